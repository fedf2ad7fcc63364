/**
 * The control plane's push path: how long an admin API write takes to reach every connected
 * sidecar (from the PUT to the last ACK the control plane receives), for 100 and 1000
 * streams, p50 and p99 over repeated writes, the control plane's CPU time per write (from the
 * PUT to the last ACK) and its RSS holding 1000 streams; `--profile` writes its CPU profile.
 * The sidecars are simulated in a separate process (bench/lib/simulated-sidecars.ts), one
 * TLS connection each, spread over 50 services whose instances all appear in the snapshot.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { AdminClient } from '../../cli/admin-client.js';
import { freePorts } from '../../test/support/ports.js';
import { waitUntil } from '../../test/support/wait.js';
import { compiledScript } from '../lib/children.js';
import { describeMachine, machineInfo } from '../lib/machine.js';
import { markdownTable } from '../lib/markdown.js';
import { cpuSeconds, rssBytes } from '../lib/proc-stats.js';
import type { Scenario, ScenarioContext, ScenarioResult } from '../scenario.js';

const SIZES = (process.env.BENCH_CP_SIZES ?? '100,1000').split(',').map(Number);
const SERVICES = 50;
const ADMIN_TOKEN = 'bench-admin-token';
/** Real sidecars ACK in parallel; two client processes keep this one from being the bottleneck. */
const SIM_PROCESSES = 2;

interface Figures {
  readonly streams: number;
  readonly writes: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** The PUT alone: validation, durable store write, snapshot composed. */
  readonly writeP50Ms: number;
  readonly rssMiB: number;
  readonly snapshotKiB: number;
  /** The control plane's CPU time (utime+stime) from each PUT to its last ACK, averaged. */
  readonly cpuPerWriteMs: number;
}

interface ProxiesBody {
  snapshotVersion: string;
  proxies: { ackedVersion: string | null; ackedAt: string | null; state: string }[];
}

export const scenario: Scenario = {
  name: 'control-plane',
  description: 'convergence from an admin API write to the last ACK for 100 and 1000 sidecar streams (p50/p99), control-plane RSS',
  run: runControlPlane,
};

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function measure(ctx: ScenarioContext, streams: number, writes: number): Promise<Figures> {
  const [httpPort, grpcPort] = (await freePorts(2)) as [number, number];
  const dataDir = join(ctx.workDir, `cp-${streams}`);
  const { profileDir } = ctx.options;
  if (profileDir) {
    mkdirSync(profileDir, { recursive: true });
    ctx.log(`the control plane's CPU profile goes to ${profileDir}/control-plane-${streams}.cpuprofile when it exits`);
  }
  const profile = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-name', `control-plane-${streams}.cpuprofile`] : [];
  const cp = ctx.children.spawn(
    `control-plane (${streams})`,
    process.execPath,
    [...profile, join(ctx.repoRoot, 'bin/skein.js'), 'control-plane', '--data-dir', dataDir, '--http-port', String(httpPort), '--grpc-port', String(grpcPort), '--grpc-host', '127.0.0.1'],
    { env: { SKEIN_ADMIN_TOKEN: ADMIN_TOKEN, SKEIN_LOG_LEVEL: 'warn' } },
  );
  const api = new AdminClient(`http://127.0.0.1:${httpPort}`, ADMIN_TOKEN);
  await waitUntil(async () => (await api.get('/healthz')).status === 200, { timeoutMs: 20_000, what: `control plane: ${cp.output()}` });
  const tokens: string[] = [];
  for (let i = 0; i < SERVICES; i++) tokens.push((await api.post<{ token: string }>('/api/v1/tokens', { service: `svc-${i}` })).body.token);
  // Every process ACKs its share; a version has converged when every process said so.
  const ackedBy = new Map<number, number>();
  const script = compiledScript(new URL('../lib/simulated-sidecars.js', import.meta.url).href);
  const share = Math.ceil(streams / SIM_PROCESSES);
  const sims = Array.from({ length: SIM_PROCESSES }, (_, k) =>
    ctx.children.spawn(
      `simulated sidecars ${k + 1}/${SIM_PROCESSES}`,
      process.execPath,
      [script, `127.0.0.1:${grpcPort}`, join(dataDir, 'ca.crt'), String(k * share), String(Math.min(share, streams - k * share)), tokens.join(',')],
      { onStdoutLine: (line) => line.startsWith('acked ') && ackedBy.set(Number(line.slice(6)), (ackedBy.get(Number(line.slice(6))) ?? 0) + 1) },
    ),
  );
  await waitUntil(
    () => {
      const dead = sims.find((p) => p.hasExited);
      if (dead) throw new Error(dead.output());
      return sims.every((p) => p.stdout().includes('ready'));
    },
    { timeoutMs: 120_000, intervalMs: 100, what: `${streams} streams to connect` },
  );
  await waitUntil(async () => (await api.get<ProxiesBody>('/api/v1/proxies')).body.proxies.filter((p) => p.state === 'SYNCED').length === streams, { timeoutMs: 60_000, intervalMs: 200, what: `${streams} proxies SYNCED` });
  ctx.log(`${streams} streams connected and SYNCED`);

  const samples: number[] = [];
  const writeTimes: number[] = [];
  let snapshotBytes = 0;
  let cpuSpent = 0;
  for (let i = 0; i < writes; i++) {
    const weights = i % 2 === 0 ? { v1: 90, v2: 10 } : { v1: 80, v2: 20 };
    const cpuAtStart = cpuSeconds(cp.pid);
    const started = Date.now();
    const res = await api.put(`/api/v1/routes/svc-${i % SERVICES}/split`, weights);
    writeTimes.push(Date.now() - started);
    const version = Number(res.headers.get('skein-snapshot-version'));
    await waitUntil(() => ackedBy.get(version) === SIM_PROCESSES, { timeoutMs: 30_000, intervalMs: 5, what: `every stream to ACK ${version}` });
    // Before this benchmark's own read of /api/v1/proxies, which is no part of the push.
    cpuSpent += cpuSeconds(cp.pid) - cpuAtStart;
    // The control plane's own record says when it received each ACK; read once, after the fact.
    const lastAck = await waitUntil(
      async () => {
        const body = (await api.get<ProxiesBody>('/api/v1/proxies')).body;
        return body.proxies.every((p) => Number(p.ackedVersion) >= version) && Math.max(...body.proxies.map((p) => Date.parse(p.ackedAt!)));
      },
      { timeoutMs: 10_000, intervalMs: 20, what: `the control plane to record every ACK of ${version}` },
    );
    samples.push(lastAck - started);
    if (i === 0) snapshotBytes = Buffer.byteLength(JSON.stringify((await api.get('/api/v1/snapshot')).body));
  }
  const rss = rssBytes(cp.pid);
  const sorted = [...samples].sort((x, y) => x - y);
  const cpuPerWriteMs = Math.round((cpuSpent / writes) * 1000);
  ctx.log(`${streams} streams: p50 ${percentile(sorted, 50)} ms, p99 ${percentile(sorted, 99)} ms, control-plane CPU ${cpuPerWriteMs} ms per write, RSS ${(rss / 2 ** 20).toFixed(0)} MiB`);
  await ctx.children.stopAll();
  return {
    streams,
    writes,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted.at(-1)!,
    writeP50Ms: percentile([...writeTimes].sort((x, y) => x - y), 50),
    rssMiB: Math.round(rss / 2 ** 20),
    snapshotKiB: Math.round(snapshotBytes / 1024),
    cpuPerWriteMs,
  };
}

async function runControlPlane(ctx: ScenarioContext): Promise<ScenarioResult> {
  const figures: Figures[] = [];
  for (const streams of SIZES) figures.push(await measure(ctx, streams, streams >= 1000 ? 30 : 50));
  return {
    markdown: report(figures),
    figures: Object.fromEntries(figures.flatMap((f) => [[`p50 ms (${f.streams} streams)`, f.p50Ms], [`p99 ms (${f.streams} streams)`, f.p99Ms], [`CPU ms per write (${f.streams} streams)`, f.cpuPerWriteMs], [`RSS MiB (${f.streams} streams)`, f.rssMiB]])),
  };
}

function report(figures: readonly Figures[]): string {
  return markdownTable(
    ['sidecar streams', 'writes', 'convergence p50', 'p99', 'max', 'of which the PUT (p50)', 'control-plane CPU per write', 'snapshot size', 'control-plane RSS'],
    figures.map((f) => [String(f.streams), String(f.writes), `${f.p50Ms} ms`, `${f.p99Ms} ms`, `${f.maxMs} ms`, `${f.writeP50Ms} ms`, `${f.cpuPerWriteMs} ms`, `${f.snapshotKiB} KiB`, `${f.rssMiB} MiB`]),
  ) + `\n\n${describeMachine(machineInfo())}`;
}
