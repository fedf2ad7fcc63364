/**
 * The data-plane benchmark, side by side in one run on 127.0.0.1 with one upstream:
 * (A) direct, (B) an nginx pair, (C) a Skein sidecar pair with every feature on, and on request
 * (`--only ...,node-pipe`) (D) a Node pair that only relays bytes over mTLS. For each:
 * maximum throughput (wrk, closed loop), latency added over (A) at a fixed 1000 rps on 16
 * connections (paced open-loop load, see lib/paced-load.ts), and peak RSS and CPU seconds of
 * each proxy process. Ratios are taken within the run because the machine is shared.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts } from '../../test/support/ports.js';
import { makeBenchIdentities } from '../lib/identities.js';
import { describeMachine, machineInfo } from '../lib/machine.js';
import { markdownTable } from '../lib/markdown.js';
import { runPacedLoad, summarize, type LatencySummary, type PacedLoadRun } from '../lib/paced-load.js';
import { combineUsage, UsageSampler, type Usage } from '../lib/proc-stats.js';
import { ensureTool } from '../lib/tools.js';
import { startUpstream } from '../lib/upstream-server.js';
import { combineWrk, runWrk, type WrkResult } from '../lib/wrk.js';
import type { Scenario, ScenarioContext, ScenarioResult } from '../scenario.js';
import { directTarget } from '../targets/direct.js';
import { startNginxPair } from '../targets/nginx-pair.js';
import { startSkeinPair } from '../targets/skein-pair.js';
import { startNodePipePair } from '../targets/node-pipe-pair.js';
import { waitForTarget, type Target, type TargetName } from '../targets/target.js';

const PROXIED: readonly TargetName[] = ['nginx', 'skein'];
/** Run only when named in --only: a reference, not part of the issue's comparison. */
const OPTIONAL: readonly TargetName[] = ['node-pipe'];
const CONNECTIONS = 16;
const FIXED_RATE = 1000;
/**
 * Unrecorded paced load at the start of each latency round (PacedLoadOptions.warmupSeconds).
 * 5 s: after the idle spell of the other targets' turns a sidecar needs about that long at
 * 1000 rps to be optimised again (README, Benchmarks: the tail-latency paragraphs).
 */
const LATENCY_WARMUP_SECONDS = 5;
const CLIENT_SERVICE = 'bench-client';
const SERVER_SERVICE = 'bench-upstream';

/** Everything measured for one target, slice by slice (see BenchOptions.rounds). */
interface Measured {
  readonly target: Target;
  readonly max: WrkResult[];
  readonly latency: PacedLoadRun[];
  /** Per slice, per proxy process in the order of target.proxies. */
  readonly maxUsage: Usage[][];
  readonly latencyUsage: Usage[][];
}

export const scenario: Scenario = {
  name: 'data-plane',
  description: 'direct vs nginx pair vs Skein sidecar pair: max rps, added latency at 1000 rps, RSS and CPU',
  run: runDataPlane,
};

async function runDataPlane(ctx: ScenarioContext): Promise<ScenarioResult> {
  const machine = machineInfo();
  const wrkPath = ensureTool('wrk', 'wrk', ctx.log);
  const targets = await startTargets(ctx, selectTargets(ctx.options.only));
  for (const target of targets) await waitForTarget(target);
  const observers = new Map<TargetName, () => Promise<string>>();
  for (const target of targets) if (target.observe) observers.set(target.name, await target.observe());

  const { warmupSeconds, rounds } = ctx.options;
  // Targets take turns in short slices, so a burst of other work on a shared machine hits all of them alike.
  const slice = Math.max(1, Math.round(ctx.options.durationSeconds / rounds));
  const runs: Measured[] = targets.map((target) => ({ target, max: [], latency: [], maxUsage: [], latencyUsage: [] }));
  for (const { target } of runs) {
    ctx.log(`${target.label}: warm-up ${warmupSeconds}s`);
    await runWrk(ctx.children, { wrkPath, url: target.url, host: target.host, connections: CONNECTIONS, durationSeconds: warmupSeconds });
  }
  for (let round = 1; round <= rounds; round++) {
    for (const run of runs) {
      const { target } = run;
      const { result, usage } = await measured(target, () =>
        runWrk(ctx.children, { wrkPath, url: target.url, host: target.host, connections: CONNECTIONS, durationSeconds: slice }),
      );
      if (result.errors > 0) throw new Error(`${target.label}: wrk saw ${result.errors} errors in ${result.requests} requests`);
      run.max.push(result);
      run.maxUsage.push(usage);
      ctx.log(`${target.label}: max rps round ${round}/${rounds}: ${Math.round(result.rps)} rps`);
    }
  }
  for (let round = 1; round <= rounds; round++) {
    for (const run of runs) {
      const { target } = run;
      const { result, usage } = await measured(target, () =>
        runPacedLoad(ctx.children, {
          url: target.url,
          host: target.host,
          rate: FIXED_RATE,
          connections: CONNECTIONS,
          durationSeconds: slice,
          warmupSeconds: LATENCY_WARMUP_SECONDS,
        }),
      );
      run.latency.push(result);
      run.latencyUsage.push(usage);
      const l = summarize([result]);
      ctx.log(`${target.label}: ${FIXED_RATE} rps round ${round}/${rounds}: p50 ${ms(l.p50Ms)} p99 ${ms(l.p99Ms)} p99.9 ${ms(l.p999Ms)}`);
    }
  }

  const observed = new Map<TargetName, string>();
  for (const [name, describe] of observers) observed.set(name, await describe());
  const niceness = ctx.options.niceness === undefined ? '' : `; every process of the run at nice ${ctx.options.niceness}`;
  return report(runs, `${describeMachine(machine)}${niceness}`, slice, rounds, observed);
}

/** Starts the upstream and the wanted targets on it, with fresh certificates and free ports. */
async function startTargets(ctx: ScenarioContext, wanted: readonly TargetName[]): Promise<Target[]> {
  const nginxPath = wanted.includes('nginx') ? ensureTool('nginx', 'nginx', ctx.log) : undefined;
  const identities = makeBenchIdentities(ctx.workDir, CLIENT_SERVICE, SERVER_SERVICE);
  const upstream = await startUpstream(ctx.children);
  const ports = await freePorts(10);
  const targets: Target[] = [directTarget(upstream)];
  if (nginxPath) {
    targets.push(startNginxPair(ctx.children, { nginxPath, dir: ctx.workDir, upstreamPort: upstream.port, ports: [ports[0]!, ports[1]!], identities }));
  }
  if (wanted.includes('skein')) {
    const { profileDir } = ctx.options;
    const features = process.env.BENCH_SKEIN_CONFIG ?? 'full';
    if (features !== 'full' && features !== 'minimal') throw new Error(`BENCH_SKEIN_CONFIG: expected full or minimal, got ${features}`);
    if (profileDir) {
      mkdirSync(profileDir, { recursive: true });
      ctx.log(`CPU profiles of both sidecars go to ${profileDir} when they exit`);
    }
    const skeinBin = join(ctx.repoRoot, 'bin', 'skein.js');
    targets.push(startSkeinPair(ctx.children, { skeinBin, dir: ctx.workDir, upstreamPort: upstream.port, ports: ports.slice(2, 8), identities, profileDir, features }));
  }
  if (wanted.includes('node-pipe')) targets.push(startNodePipePair(ctx.children, { upstreamPort: upstream.port, ports: [ports[8]!, ports[9]!], identities }));
  return targets;
}

function selectTargets(only: readonly string[] | undefined): TargetName[] {
  if (!only || only.length === 0) return ['direct', ...PROXIED];
  const known: readonly string[] = ['direct', ...PROXIED, ...OPTIONAL];
  const unknown = only.filter((name) => !known.includes(name));
  if (unknown.length > 0) throw new Error(`--only: unknown target ${unknown.join(', ')} (choose from ${known.join(', ')})`);
  // (A) always runs: it is the baseline of every added latency.
  return ['direct', ...[...PROXIED, ...OPTIONAL].filter((name) => only.includes(name))];
}

/** Runs `load` while sampling each proxy process of `target`. */
async function measured<T>(target: Target, load: () => Promise<T>): Promise<{ result: T; usage: Usage[] }> {
  const samplers = target.proxies.map((p) => {
    const pids = p.pids();
    if (pids.length === 0) throw new Error(`${target.label}: no ${p.role} process to measure`);
    return new UsageSampler(pids);
  });
  for (const s of samplers) s.start();
  let result: T;
  try {
    result = await load();
  } catch (err) {
    for (const s of samplers) s.cancel();
    throw err;
  }
  return { result, usage: samplers.map((s) => s.stop()) };
}

const ms = (value: number): string => `${value.toFixed(2)} ms`;
const signedMs = (value: number): string => `${value >= 0 ? '+' : '−'}${Math.abs(value).toFixed(2)} ms`;
const mib = (bytes: number): string => `${Math.round(bytes / 2 ** 20)} MiB`;

/** Per proxy process: its usage over every slice of one kind. */
function perProxy(target: Target, slices: readonly Usage[][]): Usage[] {
  return target.proxies.map((_, i) => combineUsage(slices.map((s) => s[i]!)));
}

function report(runs: readonly Measured[], machine: string, slice: number, rounds: number, observed: ReadonlyMap<TargetName, string>): ScenarioResult {
  const summary = new Map(
    runs.map((r) => [
      r.target.name,
      { max: combineWrk(r.max), latency: summarize(r.latency), maxUsage: perProxy(r.target, r.maxUsage), latencyUsage: perProxy(r.target, r.latencyUsage) },
    ]),
  );
  const base = summary.get('direct')!.latency;
  const nginx = summary.get('nginx');
  const skein = summary.get('skein');
  const measuredSeconds = slice * rounds;
  const rows = runs.map((r) => {
    const s = summary.get(r.target.name)!;
    const isBase = r.target.name === 'direct';
    const added = (p: (l: LatencySummary) => number): string => (isBase ? `(${ms(p(s.latency))})` : signedMs(p(s.latency) - p(base)));
    const cpu = (usages: Usage[]): string => (usages.length > 0 ? usages.map((u) => u.cpuSeconds.toFixed(2)).join(' / ') : '—');
    const peakRss = s.maxUsage.map((u, i) => Math.max(u.peakRssBytes, s.latencyUsage[i]!.peakRssBytes));
    return [
      r.target.label,
      Math.round(s.max.rps).toLocaleString('en-US'),
      nginx ? `${(s.max.rps / nginx.max.rps).toFixed(2)}×` : '—',
      added((l) => l.p50Ms),
      added((l) => l.p99Ms),
      added((l) => l.p999Ms),
      peakRss.length > 0 ? peakRss.map(mib).join(' / ') : '—',
      cpu(s.latencyUsage),
      cpu(s.maxUsage),
    ];
  });
  const table = markdownTable(
    [
      'target',
      'max rps',
      '× nginx pair',
      `added p50 @${FIXED_RATE} rps`,
      'added p99',
      'added p99.9',
      'peak RSS (out / in)',
      `CPU s @${FIXED_RATE} rps (out / in)`,
      'CPU s @max rps (out / in)',
    ],
    rows,
  );
  const lines = [
    `Measured ${machine}.`,
    '',
    table,
    '',
    `(A)'s row shows its own latency in parentheses; the others show what they add to it (same percentile, same run). ` +
      `Max rps: \`wrk -t1 -c${CONNECTIONS}\`; latency: ${FIXED_RATE} rps evenly spaced over ${CONNECTIONS} connections; ` +
      `each ${measuredSeconds}s in total, in ${rounds} rounds of ${slice}s with the targets taking turns; ` +
      `each latency round first sends ${LATENCY_WARMUP_SECONDS}s of the same load unrecorded, so the generator (a fresh Node process) and the target are warm. ` +
      `CPU s are summed over those rounds (for latency, warm-ups included).`,
  ];
  for (const r of runs) {
    const l = summary.get(r.target.name)!.latency;
    const counted = observed.get(r.target.name);
    const notes = [...r.target.notes, ...(counted ? [counted] : []), `paced load reached ${Math.round(l.achievedRps)} rps, latest send ${ms(l.maxSendLagMs)} behind schedule`];
    lines.push(`- ${r.target.label}: ${notes.join('; ')}`);
  }
  const figures: Record<string, number> = {};
  for (const r of runs) {
    const s = summary.get(r.target.name)!;
    const tag = r.target.label.slice(0, 3);
    figures[`${tag} max rps`] = s.max.rps;
    if (r.target.name === 'direct') continue;
    figures[`${tag} added p50 ms`] = s.latency.p50Ms - base.p50Ms;
    figures[`${tag} added p99 ms`] = s.latency.p99Ms - base.p99Ms;
    // The CPU was sampled over each slice's warm-up too, so it is shared among every request sent.
    const requests = r.latency.reduce((sum, run) => sum + run.requests + run.warmupRequests, 0);
    figures[`${tag} CPU µs per request @${FIXED_RATE} rps (both proxies)`] = (s.latencyUsage.reduce((sum, u) => sum + u.cpuSeconds, 0) / requests) * 1e6;
  }
  const pipe = summary.get('node-pipe');
  if (nginx && pipe && nginx.latency.p99Ms > base.p99Ms) {
    const floor = (pipe.latency.p99Ms - base.p99Ms) / (nginx.latency.p99Ms - base.p99Ms);
    figures['added p99 (D)/(B)'] = floor;
    lines.push('', `Floor: added p99 (D)/(B) = ${floor.toFixed(2)}×, max rps (D)/(B) = ${(pipe.max.rps / nginx.max.rps).toFixed(2)}× (a Node pair that only relays bytes over mTLS).`);
  }
  if (nginx && skein) {
    const rpsRatio = skein.max.rps / nginx.max.rps;
    const nginxAdded = nginx.latency.p99Ms - base.p99Ms;
    const skeinAdded = skein.latency.p99Ms - base.p99Ms;
    const p99Ratio = skeinAdded / nginxAdded;
    figures['max rps (C)/(B)'] = rpsRatio;
    if (nginxAdded > 0) figures['added p99 (C)/(B)'] = p99Ratio;
    lines.push(
      '',
      `Targets: max rps (C)/(B) = ${rpsRatio.toFixed(2)}× (goal ≥ 0.6×: ${rpsRatio >= 0.6 ? 'met' : 'not met'}); ` +
        `added p99 (C)/(B) = ${nginxAdded > 0 ? `${p99Ratio.toFixed(2)}×` : 'n/a, (B) added none'} (goal ≤ 1.5×: ${nginxAdded > 0 && p99Ratio <= 1.5 ? 'met' : 'not met'}).`,
    );
  }
  return { markdown: lines.join('\n'), figures };
}
