/**
 * Starts demo services as real processes in direct mode (DEMO_DIRECT_*, no sidecars) on
 * port 0, for the service-level tests in this folder. Each process is found ready by its
 * `listening on HOST:PORT` log line.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Processes, repoRoot, waitUntil, type Child } from '../support/index.js';

const RUN = join(repoRoot, 'dist', 'demo-services', 'run.js');

export class ServiceProcess {
  port = 0;

  constructor(
    readonly name: string,
    readonly child: Child,
  ) {}

  get logs(): string[] {
    return this.child.output().split('\n');
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get url(): string {
    return `http://${this.address}`;
  }

  /** Resolves once the service has logged `listening on HOST:PORT`; fails at once if it exits. */
  async ready(timeoutMs = 20_000): Promise<this> {
    const exited = this.child.exited.then((e) => {
      throw new Error(`${this.name} exited (${e.code ?? e.signal}):\n${this.child.output()}`);
    });
    const port = await Promise.race([
      waitUntil(() => /listening on [^:"]+:(\d+)/.exec(this.child.output())?.[1], { timeoutMs, what: `${this.name} to report its port` }),
      exited,
    ]);
    exited.catch(() => undefined);
    this.port = Number(port);
    return this;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    this.child.kill(signal);
    return (await this.child.exited).code;
  }
}

export function startService(procs: Processes, name: string, opts: { dataDir: string; args?: string[]; env?: Record<string, string>; port?: number }): ServiceProcess {
  const args = [RUN, name, '--data-dir', opts.dataDir, '--port', String(opts.port ?? 0), ...(opts.args ?? [])];
  return new ServiceProcess(name, procs.spawn(name, process.execPath, args, opts.env));
}

export const ORDERS_TEST_ARGS = ['--outbox-max-backoff-ms', '300', '--outbox-poll-ms', '200'];

/** The whole shop in direct mode: leaves first, then orders, then gateway. */
export class Stack {
  readonly procs = new Map<string, ServiceProcess>();
  private readonly children = new Processes();

  constructor(readonly dataDir: string = mkdtempSync(join(tmpdir(), 'skein-demo-'))) {}

  /** Starts every service; on failure what did start stays in the stack for stop()/destroy(). */
  async start(): Promise<this> {
    await Promise.all(['users', 'catalog', 'inventory', 'payments', 'notifications'].map((n) => this.launch(n)));
    await this.launch('orders');
    await this.launch('gateway');
    return this;
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
    const proc = startService(this.children, name, { dataDir: this.dataDir, env: direct, port, args: name === 'orders' ? ORDERS_TEST_ARGS : [] });
    this.procs.set(name, proc);
    return proc.ready();
  }

  async restart(name: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<ServiceProcess> {
    const old = this.get(name);
    await old.stop(signal);
    return this.launch(name, old.port);
  }

  async stop(): Promise<void> {
    await this.children.killAll();
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
