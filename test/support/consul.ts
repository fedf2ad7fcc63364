/**
 * A real `consul agent -dev` for tests, on free ports (HTTP, server RPC, Serf LAN/WAN; DNS
 * and gRPC off), one per test file: `startConsul()` in beforeAll, `agent.reset()` between
 * tests (deregisters every service, empties the KV), `agent.stop()` in afterAll. `kill()`
 * and `restart()` take the agent away and bring it back on the same ports (dev mode keeps
 * nothing, as an agent that lost its state). The binary is $CONSUL_BIN, `consul` on PATH or
 * the cached build of scripts/install-consul.sh; without one, the test fails saying how to
 * get it (never skipped).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from './ports.js';
import { waitUntil } from './wait.js';

export const CONSUL_VERSION = '1.16.3';

/** The consul binary to run, or an error saying how to install one. */
export function consulBinary(): string {
  const fromEnv = process.env.CONSUL_BIN;
  if (fromEnv && existsSync(fromEnv)) return fromEnv;
  try {
    const onPath = execFileSync('sh', ['-c', 'command -v consul'], { encoding: 'utf8' }).trim();
    if (onPath) return onPath;
  } catch {
    // not on PATH
  }
  const cached = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'skein', `consul-${CONSUL_VERSION}`);
  if (existsSync(cached)) return cached;
  throw new Error(
    'no consul binary: these tests run a real Consul agent. Build or find one with ' +
      '`bash scripts/install-consul.sh` (prints its path on the last line) and export CONSUL_BIN=<that path>, ' +
      'or put `consul` on PATH. See scripts/consul-build/README.md.',
  );
}

export interface ConsulAgentOptions {
  /** Extra HCL for the agent, e.g. an `acl { ... }` block. */
  readonly hcl?: string;
  /** A management token to use for the agent's own API calls here (with ACLs on). */
  readonly token?: string;
}

export interface ConsulAgent {
  readonly url: string;
  readonly httpPort: number;
  /** GET on the agent's HTTP API (path from /v1 on), parsed JSON, or undefined on 404. */
  get<T = unknown>(path: string): Promise<T | undefined>;
  put(path: string, body?: unknown): Promise<void>;
  /** Passing instances of a service from the health endpoint. */
  passing(service: string): Promise<HealthEntry[]>;
  /** Every service deregistered and every KV key removed. */
  reset(): Promise<void>;
  /** SIGKILL, as a crash. */
  kill(): Promise<void>;
  /** Starts again on the same ports with no state. */
  restart(): Promise<void>;
  /** Starts it again if a test left it killed. */
  restartIfDown(): Promise<void>;
  /** SIGSTOP: connections are accepted by the kernel but nothing answers, as a hung agent. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  stop(): Promise<void>;
  output(): string;
}

export interface HealthEntry {
  Node: { Node: string; Address: string };
  Service: { ID: string; Service: string; Address: string; Port: number; Tags: string[] | null; Meta: Record<string, string> | null };
  Checks: { CheckID: string; Status: string; ServiceID: string; Definition?: { HTTP?: string; Interval?: string; DeregisterCriticalServiceAfter?: string } }[];
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export async function startConsul(options: ConsulAgentOptions = {}): Promise<ConsulAgent> {
  const binary = consulBinary();
  const [http, serfLan, serfWan, server] = (await freePorts(4)) as [number, number, number, number];
  const url = `http://127.0.0.1:${http}`;
  const headers: Record<string, string> = options.token ? { 'x-consul-token': options.token } : {};
  let child: ChildProcess | undefined;
  let dataDir = '';
  let chunks: string[] = [];

  const launch = async (): Promise<void> => {
    dataDir = mkdtempSync(join(tmpdir(), 'skein-consul-'));
    const args = [
      'agent', '-dev', '-node', `skein-test-${http}`,
      '-bind', '127.0.0.1', '-client', '127.0.0.1',
      '-http-port', String(http), '-dns-port', '-1', '-grpc-port', '-1', '-grpc-tls-port', '-1',
      '-serf-lan-port', String(serfLan), '-serf-wan-port', String(serfWan), '-server-port', String(server),
      '-data-dir', dataDir, '-log-level', 'warn',
    ];
    if (options.hcl) args.push('-hcl', options.hcl);
    chunks = [];
    const proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    live.add(proc);
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => chunks.push(d));
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => chunks.push(d));
    proc.once('exit', () => live.delete(proc));
    try {
      await waitUntil(
        async () => {
          if (proc.exitCode !== null) throw new Error(`consul exited ${proc.exitCode}`);
          const res = await fetch(`${url}/v1/status/leader`, { headers });
          const leader = (await res.json()) as string;
          return res.ok && leader !== '';
        },
        { timeoutMs: 30_000, intervalMs: 50, what: `consul agent at ${url} to elect a leader` },
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- consul output ---\n${chunks.join('')}`);
    }
  };

  const halt = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child;
    child = undefined;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((resolve) => proc.once('exit', resolve));
      proc.kill(signal);
      await exited;
    }
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  };

  const request = async (method: string, path: string, body?: unknown): Promise<Response> =>
    fetch(`${url}/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });

  await launch();
  const agent: ConsulAgent = {
    url,
    httpPort: http,
    async get<T>(path: string) {
      const res = await request('GET', path);
      if (res.status === 404) return undefined;
      if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
      return (await res.json()) as T;
    },
    async put(path, body) {
      const res = await request('PUT', path, body);
      if (!res.ok) throw new Error(`PUT ${path}: ${res.status} ${await res.text()}`);
      await res.arrayBuffer();
    },
    async passing(service) {
      return (await agent.get<HealthEntry[]>(`/health/service/${service}?passing`)) ?? [];
    },
    async reset() {
      const services = (await agent.get<Record<string, unknown>>('/agent/services')) ?? {};
      for (const id of Object.keys(services)) await agent.put(`/agent/service/deregister/${encodeURIComponent(id)}`);
      const res = await request('DELETE', '/kv/?recurse');
      await res.arrayBuffer();
    },
    kill: () => halt('SIGKILL'),
    async restart() {
      await halt('SIGKILL');
      await launch();
    },
    async restartIfDown() {
      if (child === undefined) await launch();
    },
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
    stop: () => halt('SIGTERM'),
    output: () => chunks.join(''),
  };
  return agent;
}
