import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePorts, isPortFree, RESERVATIONS } from './free-ports.js';

const ephemeralStart = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0]);

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
    const [next] = await freePorts(1);
    // The walk goes on from where it stopped, so the following port is the one to block.
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(next! + 1, '127.0.0.1', resolve));
    try {
      const [port] = await freePorts(1);
      expect(port).not.toBe(next! + 1);
      expect(await isPortFree(port!)).toBe(true);
    } finally {
      blocker.close();
    }
  });

  it('skips a port another live process has reserved, and reclaims one whose process has exited', async () => {
    const [next] = await freePorts(1);
    mkdirSync(RESERVATIONS, { recursive: true });
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
    try {
      writeFileSync(join(RESERVATIONS, String(next! + 1)), String(holder.pid));
      const [port] = await freePorts(1);
      expect(port).not.toBe(next! + 1);
      expect(readFileSync(join(RESERVATIONS, String(port)), 'utf8')).toBe(String(process.pid));
    } finally {
      holder.kill();
    }
    const [after] = await freePorts(1);
    const gone = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
    await new Promise((resolve) => gone.once('exit', resolve));
    writeFileSync(join(RESERVATIONS, String(after! + 1)), String(gone.pid));
    const [reclaimed] = await freePorts(1);
    expect(reclaimed).toBe(after! + 1);
    expect(readFileSync(join(RESERVATIONS, String(reclaimed)), 'utf8')).toBe(String(process.pid));
  });
});
