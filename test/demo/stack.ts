/**
 * Starts demo services as real processes in direct mode (DEMO_DIRECT_*, no sidecars) on
 * port 0, for the service-level tests in this folder. Each process is found ready by its
 * `listening on HOST:PORT` log line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';


function runScript(): string {
  // Tests run from source (vitest) or from dist; the services always run from dist.
  const here = fileURLToPath(import.meta.url);
  const root = here.includes('/dist/') ? here.slice(0, here.indexOf('/dist/')) : here.slice(0, here.indexOf('/test/demo/'));
  return join(root, 'dist', 'demo-services', 'run.js');
}

export class ServiceProcess {
  readonly logs: string[] = [];
  port = 0;
  private readonly exited: Promise<unknown>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    this.exited = once(child, 'exit');
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => this.logs.push(line));
    }
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get url(): string {
    return `http://${this.address}`;
  }

  async ready(timeoutMs = 20_000): Promise<this> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      for (const line of this.logs) {
        const m = /listening on [^:"]+:(\d+)/.exec(line);
        if (m) {
          this.port = Number(m[1]);
          return this;
        }
      }
      if (this.child.exitCode !== null) throw new Error(`${this.name} exited with ${this.child.exitCode}:\n${this.logs.join('\n')}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`${this.name} did not report its port within ${timeoutMs} ms:\n${this.logs.join('\n')}`);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill(signal);
      await this.exited;
    }
    return this.child.exitCode;
  }
}

export function startService(name: string, opts: { dataDir: string; args?: string[]; env?: Record<string, string>; port?: number }): ServiceProcess {
  const args = [runScript(), name, '--data-dir', opts.dataDir, '--port', String(opts.port ?? 0), ...(opts.args ?? [])];
  const child = spawn(process.execPath, args, {
    env: { ...process.env, SKEIN_LOG_LEVEL: 'info', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new ServiceProcess(name, child);
}

export const ORDERS_TEST_ARGS = ['--outbox-max-backoff-ms', '300', '--outbox-poll-ms', '200'];

/** The whole shop in direct mode: leaves first, then orders, then gateway. */
export class Stack {
  readonly procs = new Map<string, ServiceProcess>();

  private constructor(readonly dataDir: string) {}

  static async start(dataDir = mkdtempSync(join(tmpdir(), 'skein-demo-'))): Promise<Stack> {
    const stack = new Stack(dataDir);
    try {
      await Promise.all(['users', 'catalog', 'inventory', 'payments', 'notifications'].map((n) => stack.launch(n)));
      await stack.launch('orders');
      await stack.launch('gateway');
    } catch (err) {
      await stack.stop();
      throw err;
    }
    return stack;
  }

  get(name: string): ServiceProcess {
    const p = this.procs.get(name);
    if (!p) throw new Error(`no ${name} in the stack`);
    return p;
  }

  get gateway(): string {
    return this.get('gateway').url;
  }

  /** Starts (or restarts) one service; a restart keeps its port so its callers still find it. */
  async launch(name: string, port?: number): Promise<ServiceProcess> {
    const direct: Record<string, string> = {};
    for (const [n, p] of this.procs) if (n !== name) direct[`DEMO_DIRECT_${n.toUpperCase()}`] = p.address;
    const proc = startService(name, { dataDir: this.dataDir, env: direct, port, args: name === 'orders' ? ORDERS_TEST_ARGS : [] });
    this.procs.set(name, proc);
    return proc.ready();
  }

  async restart(name: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<ServiceProcess> {
    const old = this.get(name);
    await old.stop(signal);
    return this.launch(name, old.port);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.procs.values()].map((p) => p.stop('SIGKILL')));
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

export interface JsonAnswer<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

export async function http<T = any>(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<JsonAnswer<T>> {
  const res = await fetch(url, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

/** Polls `check` until it returns a value (not undefined) or the deadline passes. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}
