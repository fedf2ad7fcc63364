/**
 * Consul for the demo: a binary found by scripts/install-consul.sh (never built here: a
 * first build takes minutes, `npm run consul:install` does it once), run as a dev agent on
 * free ports with its state in memory.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { consulNodeName } from './pid-file.js';
import { freePorts } from '../common/net/free-ports.js';
import type { ManagedProcess, ProcessSupervisor } from './processes.js';
import { waitFor } from './wait.js';

const run = promisify(execFile);

/** The path of a consul binary, or why there is none. */
export async function findConsulBinary(repoRoot: string): Promise<{ path?: string; reason?: string }> {
  try {
    const { stdout } = await run('bash', [join(repoRoot, 'scripts', 'install-consul.sh'), '--no-build'], { timeout: 10_000 });
    const path = stdout.trim().split('\n').at(-1);
    return path ? { path } : { reason: 'the install script printed no path' };
  } catch (err) {
    const stderr = String((err as { stderr?: string }).stderr ?? '').trim();
    return { reason: stderr.split('\n').at(-1)?.replace(/^install-consul: /, '') || (err as Error).message };
  }
}

export interface RunningConsul {
  readonly url: string;
  readonly process: ManagedProcess;
  /** Resolves once the agent has elected itself leader and serves its catalog. */
  readonly ready: Promise<void>;
}

export async function startConsul(binary: string, supervisor: ProcessSupervisor, logFile: string): Promise<RunningConsul> {
  const [http, serfLan, serfWan, server] = (await freePorts(4)) as [number, number, number, number];
  const proc = supervisor.start('consul', binary, [
    'agent', '-dev', '-node', consulNodeName(process.pid), '-bind', '127.0.0.1', '-client', '127.0.0.1',
    '-http-port', String(http), '-dns-port', '-1', '-grpc-port', '-1', '-grpc-tls-port', '-1',
    '-serf-lan-port', String(serfLan), '-serf-wan-port', String(serfWan), '-server-port', String(server),
    '-log-level', 'warn',
  ], { logFile });
  const url = `http://127.0.0.1:${http}`;
  const ready = consulLeader(url, { timeoutMs: 20_000, what: `Consul at ${url} to elect itself leader`, watch: [proc] });
  // Awaited later, once the control plane is up; until then a failure must not go unhandled.
  ready.catch(() => undefined);
  return { url, process: proc, ready };
}

/** Resolves once the agent at `url` answers and knows its cluster's leader. */
export async function consulLeader(url: string, options: { timeoutMs: number; what: string; watch?: ManagedProcess[] }): Promise<void> {
  await waitFor(async () => {
    const res = await fetch(`${url}/v1/status/leader`, { signal: AbortSignal.timeout(2_000) });
    const leader = (await res.json()) as string;
    return res.ok && leader !== '';
  }, options);
}

/** Names of the services Consul's catalog knows (the `consul` service itself left out). */
export async function consulServices(url: string): Promise<string[]> {
  const res = await fetch(`${url}/v1/catalog/services`);
  if (!res.ok) throw new Error(`Consul answered ${res.status} for /v1/catalog/services`);
  return Object.keys((await res.json()) as Record<string, unknown>).filter((s) => s !== 'consul');
}
