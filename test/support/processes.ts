import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IdentityFiles } from './certs.js';
import { freePorts } from './ports.js';
import { waitUntil } from './wait.js';

/** The repository root (where package.json is), whether this file runs from source or dist/. */
export const repoRoot: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('package.json not found above test/support');
    dir = parent;
  }
  return dir;
})();

export const skeinBin = join(repoRoot, 'bin', 'skein.js');

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  /** stdout and stderr so far, interleaved, for assertion messages. */
  output(): string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<Exit>;
  readonly hasExited: boolean;
  kill(signal?: NodeJS.Signals): void;
}

export interface SidecarSpawnOptions {
  readonly service: string;
  readonly appPort: number;
  /** Path of the static snapshot file (--config). */
  readonly config: string;
  readonly version?: string;
  readonly identity?: IdentityFiles;
  readonly upstreams?: readonly { service: string; port: number }[];
  readonly appHealthPath?: string;
  readonly drainTimeout?: string;
  /** Admin path to wait for before resolving: `/ready` (default) or `/live`; `none` returns at once. */
  readonly waitFor?: '/ready' | '/live' | 'none';
  readonly extraArgs?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** Use this inbound port (e.g. one already written into a config as an endpoint) instead of a fresh one. */
  readonly inboundPort?: number;
  /** Use this admin port (e.g. one a waiting process already polls) instead of a fresh one. */
  readonly adminPort?: number;
}

export interface SpawnedSidecar extends Child {
  readonly inboundPort: number;
  readonly outboundPort: number;
  readonly adminPort: number;
  readonly adminUrl: string;
  readonly outboundUrl: string;
}

/**
 * Owns every child process a test file starts. Make one per file and call `killAll()` in
 * afterEach/afterAll; it SIGKILLs whatever is still running and waits for the exits.
 *
 *   const procs = new Processes();
 *   afterEach(() => procs.killAll());
 *   const sc = await procs.sidecar({ service: 'catalog', appPort: app.port, config: writeTempConfig({...}) });
 *   await fetch(`${sc.outboundUrl}/items`, { headers: { host: 'catalog' } });
 */
export class Processes {
  private readonly children = new Set<Child>();

  constructor() {
    // A test worker that dies (or a hook that throws before killAll) must not leave sidecars behind.
    process.once('exit', () => {
      for (const child of this.children) child.kill('SIGKILL');
    });
  }

  /** Runs `node bin/skein.js <args>` (the built dist/; run `npx tsc -p .` first). */
  skein(name: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Child {
    return this.spawn(name, process.execPath, [skeinBin, ...args], env);
  }

  spawn(name: string, command: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Child {
    const proc = spawn(command, args, { cwd: repoRoot, env: { ...process.env, SKEIN_LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: string[] = [];
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => chunks.push(d));
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => chunks.push(d));
    let hasExited = false;
    const exited = new Promise<Exit>((resolve) => {
      proc.once('exit', (code, signal) => {
        hasExited = true;
        resolve({ code, signal });
      });
    });
    const child: Child = {
      name,
      process: proc,
      output: () => chunks.join(''),
      exited,
      get hasExited() {
        return hasExited;
      },
      kill: (signal: NodeJS.Signals = 'SIGTERM') => {
        if (!hasExited) proc.kill(signal);
      },
    };
    this.children.add(child);
    void exited.then(() => this.children.delete(child));
    return child;
  }

  /** Starts `skein sidecar` with fresh free ports and waits until its admin `/ready` (or `/live`) answers 200. */
  async sidecar(options: SidecarSpawnOptions): Promise<SpawnedSidecar> {
    // Ports come from the OS but another process may take one before the sidecar binds it:
    // start over with fresh ports when that happens (a fixed inbound or admin port is kept).
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.sidecarOnce(options);
      } catch (err) {
        if (attempt >= 3 || !/EADDRINUSE/.test((err as Error).message)) throw err;
      }
    }
  }

  private async sidecarOnce(options: SidecarSpawnOptions): Promise<SpawnedSidecar> {
    const [freshInbound, outboundPort, freshAdmin] = (await freePorts(3)) as [number, number, number];
    const inboundPort = options.inboundPort ?? freshInbound;
    const adminPort = options.adminPort ?? freshAdmin;
    const args = [
      'sidecar',
      '--service', options.service,
      '--version', options.version ?? 'v1',
      '--app-port', String(options.appPort),
      '--config', options.config,
      '--inbound-host', '127.0.0.1',
      '--inbound-port', String(inboundPort),
      '--outbound-port', String(outboundPort),
      '--admin-port', String(adminPort),
      '--advertise-address', '127.0.0.1',
    ];
    if (options.appHealthPath) args.push('--app-health-path', options.appHealthPath);
    if (options.drainTimeout) args.push('--drain-timeout', options.drainTimeout);
    for (const u of options.upstreams ?? []) args.push('--upstream', `${u.service}:${u.port}`);
    if (options.identity) args.push('--cert-file', options.identity.certFile, '--key-file', options.identity.keyFile, '--ca-file', options.identity.caFile);
    args.push(...(options.extraArgs ?? []));
    const child = this.skein(`sidecar ${options.service}`, args, options.env);
    const adminUrl = `http://127.0.0.1:${adminPort}`;
    const sidecar: SpawnedSidecar = Object.assign(Object.create(child) as Child, {
      inboundPort,
      outboundPort,
      adminPort,
      adminUrl,
      outboundUrl: `http://127.0.0.1:${outboundPort}`,
    });
    const waitFor = options.waitFor ?? '/ready';
    if (waitFor !== 'none') {
      try {
        await waitForHttp(child, `${adminUrl}${waitFor}`);
      } catch (err) {
        child.kill('SIGKILL');
        await child.exited;
        throw err;
      }
    }
    return sidecar;
  }

  async killAll(): Promise<void> {
    const running = [...this.children];
    for (const child of running) child.kill('SIGKILL');
    await Promise.all(running.map((c) => c.exited));
  }
}

/** Polls `url` until it answers 200; fails early (with the child's output) if the child exits. */
export async function waitForHttp(child: Child, url: string, timeoutMs = 30_000): Promise<void> {
  try {
    await waitUntil(
      async () => {
        if (child.hasExited) throw new Error(`${child.name} exited`);
        const res = await fetch(url);
        await res.arrayBuffer();
        return res.status === 200;
      },
      { timeoutMs, what: `${url} to answer 200` },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- ${child.name} output ---\n${child.output()}`);
  }
}
