import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePorts, isPortFree, RESERVATIONS } from './free-ports.js';

const ephemeralStart = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0]);

/**
 * The port this process's walk tries next, with an empty reservation file of ours on it (an
 * empty file reads as "being written", so others skip it). Created exclusively: a port that
 * another process has reserved is never touched, since its owner may be about to listen.
 */
async function nextPortHeld(): Promise<{ port: number; file: string }> {
  mkdirSync(RESERVATIONS, { recursive: true });
  for (;;) {
    const [next] = await freePorts(1);
    // The walk goes on from where it stopped, so the following port is the one it tries next.
    const file = join(RESERVATIONS, String(next! + 1));
    try {
      closeSync(openSync(file, 'wx'));
      return { port: next! + 1, file };
    } catch (err) {
      if ((err as { code?: string }).code !== 'EEXIST') throw err;
    }
  }
}

const gonePid = async (): Promise<number> => {
  const gone = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await new Promise((resolve) => gone.once('exit', resolve));
  return gone.pid!;
};

describe('freePorts', () => {
  it('hands out distinct ports below the ephemeral range that can be listened on', async () => {
    const ports = await freePorts(20);
    expect(new Set(ports).size).toBe(20);
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(10_000);
      expect(port).toBeLessThan(ephemeralStart);
      expect(await isPortFree(port)).toBe(true);
    }
  });

  it('skips a port that something else is listening on', async () => {
    const held = await nextPortHeld();
    unlinkSync(held.file);
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(held.port, '127.0.0.1', resolve));
    try {
      const [port] = await freePorts(1);
      expect(port).not.toBe(held.port);
      expect(await isPortFree(port!)).toBe(true);
    } finally {
      blocker.close();
    }
  });

  it('skips a port another live process has reserved, and reclaims one whose process has exited', async () => {
    const live = await nextPortHeld();
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
    try {
      writeFileSync(live.file, String(holder.pid));
      const [port] = await freePorts(1);
      expect(port).not.toBe(live.port);
      expect(readFileSync(join(RESERVATIONS, String(port)), 'utf8')).toBe(String(process.pid));
    } finally {
      holder.kill();
    }
    const dead = await nextPortHeld();
    writeFileSync(dead.file, String(await gonePid()));
    const [reclaimed] = await freePorts(1);
    expect(reclaimed).toBe(dead.port);
    expect(readFileSync(dead.file, 'utf8')).toBe(String(process.pid));
  });

  it('leaves a dead process\'s port alone while another process is reclaiming it', async () => {
    const dead = await nextPortHeld();
    writeFileSync(dead.file, String(await gonePid()));
    // Another reclaimer holds the lock: it may be between removing the file and creating its own.
    writeFileSync(`${dead.file}.lock`, '1');
    try {
      const [port] = await freePorts(1);
      expect(port).not.toBe(dead.port);
    } finally {
      unlinkSync(`${dead.file}.lock`);
    }
    // Without the lock the same port is reclaimed, and the lock is not left behind.
    const again = await nextPortHeld();
    writeFileSync(again.file, String(await gonePid()));
    const [reclaimed] = await freePorts(1);
    expect(reclaimed).toBe(again.port);
    expect(() => readFileSync(`${again.file}.lock`)).toThrow();
  });
});
