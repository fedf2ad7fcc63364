import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanLeftovers, PidFile } from './pid-file.js';
import { isAlive } from './state.js';

const children: ChildProcess[] = [];
const dirs: string[] = [];

/** A real process that idles; `args` show on its command line, as a demo child's data dir would. */
async function idle(...args: string[]): Promise<ChildProcess> {
  // `--` so that node leaves args to the script instead of reading them as its own options.
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', '--', ...args], { detached: true, stdio: 'ignore' });
  children.push(child);
  // Until exec, /proc shows the parent's command line.
  const deadline = Date.now() + 5_000;
  while (!readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').includes('setInterval')) {
    if (Date.now() > deadline) throw new Error(`process ${child.pid} did not exec within 5 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return child;
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
}

afterEach(async () => {
  for (const c of children.splice(0)) {
    c.kill('SIGKILL');
    await exited(c);
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject).listen(port, '127.0.0.1', () => resolve(server));
  });
}

async function freePort(): Promise<number> {
  const server = await listen(0);
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function pidFileIn(): { dir: string; file: PidFile } {
  const dir = mkdtempSync(join(tmpdir(), 'skein-pids-'));
  dirs.push(dir);
  return { dir, file: new PidFile(join(dir, 'demo.pids')) };
}

describe('cleanLeftovers', () => {
  it('kills what a dead demo left running on its data dir, and nothing that is not its own', async () => {
    const { dir, file } = pidFileIn();
    const deadOrchestrator = await idle('demo');
    deadOrchestrator.kill('SIGKILL');
    await exited(deadOrchestrator);
    const leftover = await idle('--data-dir', dir);
    const stranger = await idle('--data-dir', '/somewhere/else');
    writeFileSync(file.path, `${deadOrchestrator.pid} skein-demo\n${leftover.pid} orders\n${stranger.pid} recycled-pid\n`);

    const result = await cleanLeftovers(file, dir);
    expect(result.runningDemo).toBeUndefined();
    expect(result.killed.map((k) => k.name)).toEqual(['orders']);
    await exited(leftover);
    expect(isAlive(stranger.pid!)).toBe(true);
  });

  it('returns only once what it killed has exited, so the next demo can take its ports', async () => {
    const { dir, file } = pidFileIn();
    const deadOrchestrator = await idle('demo');
    deadOrchestrator.kill('SIGKILL');
    await exited(deadOrchestrator);
    // A leftover gateway still holding its port, as after `kill -9` of the orchestrator.
    const port = await freePort();
    // Its 256 MiB of touched memory make its exit take a while after SIGKILL, as a real gateway's does.
    const script = `globalThis.held = Buffer.alloc(256 * 2 ** 20, 1); require('net').createServer().listen(${port}, '127.0.0.1', () => console.log('up'))`;
    const gateway = spawn(process.execPath, ['-e', script, '--', '--data-dir', dir], { detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
    children.push(gateway);
    await new Promise((resolve) => gateway.stdout!.once('data', resolve));
    writeFileSync(file.path, `${deadOrchestrator.pid} skein-demo\n${gateway.pid} gateway\n`);

    expect((await cleanLeftovers(file, dir)).killed.map((k) => k.name)).toEqual(['gateway']);
    // At once, as the orchestrator claims its ports right after.
    const server = await listen(port);
    server.close();
  });

  it('reports a demo that still runs instead of touching its processes', async () => {
    const { dir, file } = pidFileIn();
    const orchestrator = await idle('demo', '--data-dir', dir);
    const child = await idle('--data-dir', dir);
    writeFileSync(file.path, `${orchestrator.pid} skein-demo\n${child.pid} orders\n`);

    expect(await cleanLeftovers(file, dir)).toEqual({ runningDemo: orchestrator.pid, killed: [] });
    expect(isAlive(child.pid!)).toBe(true);
  });
});
