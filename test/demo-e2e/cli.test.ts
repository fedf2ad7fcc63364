/** `skein demo` command-line errors, and scenarios with no demo to run against: quick, and no demo is started. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Processes, skeinBin, tempDir, waitUntil } from '../support/index.js';

const procs = new Processes();
const strays: ChildProcess[] = [];
afterEach(async () => {
  for (const c of strays.splice(0)) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGKILL');
      await new Promise((resolve) => c.once('exit', resolve));
    }
  }
  await procs.killAll();
});

/** A process in its own group that idles with `args` on its command line, as a demo's children do; resolves once it runs them. */
async function idle(...args: string[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', '--', ...args], { detached: true, stdio: 'ignore' });
  strays.push(child);
  await waitUntil(() => readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').includes('setInterval') || undefined, { timeoutMs: 5_000, what: `process ${child.pid} to exec` });
  return child;
}

async function skein(args: readonly string[]): Promise<{ code: number | null; output: string }> {
  const child = procs.spawn(`skein ${args.join(' ')}`, process.execPath, [skeinBin, ...args]);
  const exit = await child.exited;
  return { code: exit.code, output: child.output() };
}

describe('skein demo (command line)', () => {
  it('refuses bad flags with exit 2 and says what is wrong', async () => {
    const port = await skein(['demo', '--gateway-port', 'eighty']);
    expect(port.code).toBe(2);
    expect(port.output).toContain('not a port number: eighty');
    const consul = await skein(['demo', '--consul', 'ftp://x']);
    expect(consul.code).toBe(2);
    expect(consul.output).toContain('expected auto, off or an agent URL');
    const rate = await skein(['demo', '--rate', '-3']);
    expect(rate.code).toBe(2);
    // The message states the rule that refuses it: 0 is no rate (--no-load is).
    const zero = await skein(['demo', '--rate', '0']);
    expect(zero.code).toBe(2);
    expect(zero.output).toContain('not a rate above 0 and at most 1000 requests per second (--no-load runs none): 0');
  });

  it('lists the scenarios, and says when no demo is running', async () => {
    const list = await skein(['demo', 'scenario']);
    expect(list.code).toBe(0);
    for (const name of ['canary', 'blue-green', 'affinity', 'payments-outage', 'kill-instance', 'notifications-down']) expect(list.output).toContain(name);
    const dataDir = tempDir('skein-demo-none-');
    const none = await skein(['demo', 'scenario', 'canary', '--data-dir', dataDir]);
    expect(none.code).toBe(1);
    expect(none.output).toContain(`no demo is running on ${dataDir}`);
    // A usage error (exit 2) naming the scenarios there are.
    const unknown = await skein(['demo', 'scenario', 'meltdown', '--data-dir', dataDir]);
    expect(unknown.code).toBe(2);
    expect(unknown.output).toMatch(/^skein: no scenario "meltdown"; there are:\n {2}canary {2,}.*\n {2}blue-green /);
    const stop = await skein(['demo', 'stop', '--data-dir', dataDir]);
    expect(stop.code).toBe(1);
    expect(stop.output).toContain('no demo is running');
  });

  it('stop, after the orchestrator was killed (kill -9), stops the processes it left running', async () => {
    const dataDir = tempDir('skein-demo-orphans-');
    const orchestrator = await idle('demo', '--data-dir', dataDir);
    const sidecar = await idle('sidecar', '--ca-file', join(dataDir, 'control-plane', 'ca.crt'));
    const app = await idle('orders', '--data-dir', dataDir);
    const exited = (c: ChildProcess) => new Promise((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve(undefined) : c.once('exit', resolve)));
    writeFileSync(join(dataDir, 'demo.pids'), `${orchestrator.pid} skein-demo\n${sidecar.pid} orders sidecar\n${app.pid} orders\n`);
    writeFileSync(join(dataDir, 'demo.json'), JSON.stringify({ pid: orchestrator.pid, controlUrl: 'http://127.0.0.1:1', adminToken: 't', instances: [], pids: [] }));
    orchestrator.kill('SIGKILL');
    await exited(orchestrator);

    const stop = await skein(['demo', 'stop', '--data-dir', dataDir]);
    expect(stop.output).toContain('stopped the 2 processes it left behind');
    expect(stop.code).toBe(0);
    await Promise.all([exited(sidecar), exited(app)]);
    expect([sidecar, app].map((c) => c.signalCode)).toEqual(['SIGKILL', 'SIGKILL']);
    expect(existsSync(join(dataDir, 'demo.json'))).toBe(false);
    expect(existsSync(join(dataDir, 'demo.pids'))).toBe(false);
    // Nothing more to stop.
    const again = await skein(['demo', 'stop', '--data-dir', dataDir]);
    expect(again.code).toBe(1);
    expect(again.output).toContain('no demo is running');
  });

  it('fails within seconds, saying so, when the Consul agent given with --consul does not answer', async () => {
    // A port nothing listens on.
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const port = (server.address() as { port: number }).port;
    await new Promise((resolve) => server.close(resolve));
    const dataDir = tempDir('skein-demo-consul-');
    const started = Date.now();
    const run = await skein(['demo', '--data-dir', dataDir, '--gateway-port', '0', '--control-plane-port', '0', '--no-load', '--consul', `http://127.0.0.1:${port}`]);
    expect(run.code).toBe(1);
    expect(run.output).toContain(`could not start: timed out after 10 s waiting for the Consul agent at http://127.0.0.1:${port} (--consul)`);
    expect(run.output).not.toContain('✓ [');
    // Not the minute every sidecar would wait for a snapshot that needs Consul's catalog.
    expect(Date.now() - started).toBeLessThan(45_000);
    expect(existsSync(join(dataDir, 'demo.pids'))).toBe(false);
  }, 90_000);

  it('stop stops a demo that is still starting (no demo.json yet), as Ctrl-C would', async () => {
    const dataDir = tempDir('skein-demo-starting-');
    const marker = join(dataDir, 'got-sigterm');
    // An orchestrator halfway through its start: in demo.pids, no demo.json.
    const script = `process.on('SIGTERM', () => { require('fs').writeFileSync(${JSON.stringify(marker)}, ''); process.exit(0); }); setInterval(() => {}, 1000)`;
    const orchestrator = spawn(process.execPath, ['-e', script, '--', 'demo', '--data-dir', dataDir], { detached: true, stdio: 'ignore' });
    strays.push(orchestrator);
    await waitUntil(() => readFileSync(`/proc/${orchestrator.pid}/cmdline`, 'utf8').includes('SIGTERM') || undefined, { timeoutMs: 5_000, what: 'the orchestrator to exec' });
    writeFileSync(join(dataDir, 'demo.pids'), `${orchestrator.pid} skein-demo\n`);

    const stop = await skein(['demo', 'stop', '--data-dir', dataDir]);
    expect(stop.output).toContain(`stopping the demo (pid ${orchestrator.pid}), which was still starting`);
    expect(stop.code).toBe(0);
    expect(existsSync(marker)).toBe(true);
  });

  it('--fresh deletes a data dir the demo made, never one holding anything else', async () => {
    // The gateway port is taken, so that the demo stops right after the --fresh step.
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const taken = String((server.address() as { port: number }).port);
    try {
      // `--data-dir .` in a project, say.
      const project = tempDir('skein-demo-fresh-');
      writeFileSync(join(project, 'package.json'), '{}\n');
      mkdirSync(join(project, 'logs'));
      const refused = await skein(['demo', '--fresh', '--data-dir', project, '--gateway-port', taken, '--control-plane-port', '0']);
      expect(refused.code).toBe(1);
      expect(refused.output).toContain(`--fresh deletes the data dir, and ${project} holds what the demo did not make (package.json)`);
      expect(readdirSync(project).sort()).toEqual(['logs', 'package.json']);

      // What a demo leaves is deleted.
      const demoDir = tempDir('skein-demo-fresh-');
      for (const name of ['orders.db', 'orders.db-wal', 'notifications.log', 'demo.pids']) writeFileSync(join(demoDir, name), '');
      mkdirSync(join(demoDir, 'control-plane'));
      writeFileSync(join(demoDir, 'control-plane', 'store.json'), '{}');
      const fresh = await skein(['demo', '--fresh', '--data-dir', demoDir, '--gateway-port', taken, '--control-plane-port', '0']);
      expect(fresh.code).toBe(1);
      expect(fresh.output).toContain(`port ${taken} for the gateway is in use`);
      expect(readdirSync(demoDir)).toEqual(['logs']);
    } finally {
      server.close();
    }
  });

  it('fails at once with a clear message when the gateway port is taken, starting nothing', async () => {
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const taken = (server.address() as { port: number }).port;
    try {
      const dataDir = tempDir('skein-demo-port-');
      const run = await skein(['demo', '--data-dir', dataDir, '--gateway-port', String(taken), '--control-plane-port', '0']);
      expect(run.code).toBe(1);
      expect(run.output).toContain(`port ${taken} for the gateway is in use`);
      expect(run.output).toContain('--gateway-port');
      // Nothing was started (every process started gets a log file first), and nothing is left to clean up.
      expect(readdirSync(join(dataDir, 'logs'))).toEqual([]);
      expect(existsSync(join(dataDir, 'demo.pids'))).toBe(false);
      expect(existsSync(join(dataDir, 'demo.json'))).toBe(false);
    } finally {
      server.close();
    }
  });
});
