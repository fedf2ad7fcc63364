/**
 * The gRPC benchmark (issue 7), side by side in one run on 127.0.0.1 with one @grpc/grpc-js
 * upstream answering a tiny unary call: (A) direct, (B) an nginx pair (`grpc_pass` over mTLS
 * with HTTP/2 on every hop), (C) a Skein sidecar pair (static config, mTLS, `protocol: grpc`,
 * minimal features, as nginx has none of the others). For each: calls/s with a closed loop
 * of CONCURRENCY calls over one channel, then the latency added over (A) at a fixed rate,
 * and CPU seconds of each proxy process. Targets take turns in slices, as in data-plane.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts } from '../../test/support/ports.js';
import { waitUntil } from '../../test/support/wait.js';
import { makeBenchIdentities } from '../lib/identities.js';
import { describeMachine, machineInfo } from '../lib/machine.js';
import { markdownTable } from '../lib/markdown.js';
import { combineUsage, UsageSampler, type Usage } from '../lib/proc-stats.js';
import { runGrpcLoad, startGrpcUpstream, type GrpcLoadOptions, type GrpcLoadReport } from '../lib/grpc-load.js';
import { ensureTool } from '../lib/tools.js';
import type { Scenario, ScenarioContext, ScenarioResult } from '../scenario.js';
import { startNginxPair } from '../targets/nginx-pair.js';
import { startSkeinPair } from '../targets/skein-pair.js';
import type { Target } from '../targets/target.js';

const CONCURRENCY = 32;
const FIXED_RATE = 500;

export const scenario: Scenario = {
  name: 'grpc',
  description: `gRPC unary: direct vs nginx pair vs Skein pair: calls/s at ${CONCURRENCY} in flight, added latency at ${FIXED_RATE} calls/s`,
  run: runGrpc,
};

interface Measured {
  readonly target: Target;
  readonly max: GrpcLoadReport[];
  readonly latency: GrpcLoadReport[];
  readonly usage: Usage[][];
}

const address = (t: Target): string => new URL(t.url).host;

async function runGrpc(ctx: ScenarioContext): Promise<ScenarioResult> {
  const machine = machineInfo();
  const only = ctx.options.only;
  const wanted = (name: string): boolean => !only || only.length === 0 || only.includes(name);
  const identities = makeBenchIdentities(ctx.workDir, 'bench-client', 'bench-upstream');
  const upstream = await startGrpcUpstream(ctx.children);
  const ports = await freePorts(8);
  const targets: Target[] = [{ name: 'direct', label: '(A) direct', url: `http://127.0.0.1:${upstream.port}/`, proxies: [], children: [upstream.child], notes: [] }];
  if (wanted('nginx')) {
    const nginxPath = ensureTool('nginx', 'nginx', ctx.log);
    targets.push(startNginxPair(ctx.children, { nginxPath, dir: ctx.workDir, upstreamPort: upstream.port, ports: [ports[0]!, ports[1]!], identities, grpc: true }));
  }
  if (wanted('skein')) {
    const skeinBin = join(ctx.repoRoot, 'bin', 'skein.js');
    targets.push(startSkeinPair(ctx.children, { skeinBin, dir: ctx.workDir, upstreamPort: upstream.port, ports: ports.slice(2), identities, features: 'minimal', protocol: 'grpc', profileDir: ctx.options.profileDir }));
  }
  const load = (t: Target, o: Omit<GrpcLoadOptions, 'address' | 'authority'>): Promise<GrpcLoadReport> =>
    runGrpcLoad(ctx.children, { address: address(t), authority: t.host, ...o });
  for (const t of targets) {
    await waitUntil(
      async () => {
        const dead = t.children.find((c) => c.hasExited);
        if (dead) throw new Error(`${dead.name} exited:\n${dead.output()}`);
        return (await load(t, { seconds: 0.2, concurrency: 1 })).calls > 0;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: `${t.label} to answer a gRPC call` },
    );
  }

  const { warmupSeconds, rounds } = ctx.options;
  const slice = Math.max(1, Math.round(ctx.options.durationSeconds / rounds));
  const runs: Measured[] = targets.map((target) => ({ target, max: [], latency: [], usage: [] }));
  for (const { target } of runs) {
    ctx.log(`${target.label}: warm-up ${warmupSeconds}s`);
    await load(target, { seconds: warmupSeconds, concurrency: CONCURRENCY });
  }
  // Failed calls are reported, not fatal: a proxy that sheds load under a fixed rate is a result.
  const check = (t: Target, r: GrpcLoadReport): GrpcLoadReport => {
    if (r.errors > 0) ctx.log(`${t.label}: ${r.errors} failed calls of ${r.calls + r.errors} (first: ${r.firstError})`);
    return r;
  };
  for (let round = 1; round <= rounds; round++) {
    for (const run of runs) {
      const r = check(run.target, await load(run.target, { seconds: slice, concurrency: CONCURRENCY }));
      run.max.push(r);
      ctx.log(`${run.target.label}: max round ${round}/${rounds}: ${Math.round(r.rps)} calls/s`);
    }
  }
  for (let round = 1; round <= rounds; round++) {
    for (const run of runs) {
      const samplers = run.target.proxies.map((p) => new UsageSampler(p.pids()));
      for (const s of samplers) s.start();
      const r = check(run.target, await load(run.target, { seconds: slice, rate: FIXED_RATE }));
      run.usage.push(samplers.map((s) => s.stop()));
      run.latency.push(r);
      ctx.log(`${run.target.label}: ${FIXED_RATE} calls/s round ${round}/${rounds}: p50 ${r.p50Ms.toFixed(2)} ms p99 ${r.p99Ms.toFixed(2)} ms`);
    }
  }
  const niceness = ctx.options.niceness === undefined ? '' : `; every process of the run at nice ${ctx.options.niceness}`;
  const result = report(runs, `${describeMachine(machine)}${niceness}`, slice, rounds, wanted('nginx'));
  const resultsDir = join(ctx.repoRoot, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, 'grpc.md'), `## grpc\n\n${result.markdown}\n`);
  return result;
}

/** Rounds are equal in length, so means of per-round figures weigh them alike. */
const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const ms = (v: number): string => `${v.toFixed(2)} ms`;
const signedMs = (v: number): string => `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(2)} ms`;

function report(runs: readonly Measured[], machine: string, slice: number, rounds: number, nginxWanted: boolean): ScenarioResult {
  const rps = (r: Measured): number => mean(r.max.map((x) => x.rps));
  const p50 = (r: Measured): number => mean(r.latency.map((x) => x.p50Ms));
  const p99 = (r: Measured): number => mean(r.latency.map((x) => x.p99Ms));
  const base = runs.find((r) => r.target.name === 'direct')!;
  const nginx = runs.find((r) => r.target.name === 'nginx');
  const skein = runs.find((r) => r.target.name === 'skein');
  const cpuPerCallUs = (r: Measured): number => {
    const seconds = r.target.proxies.reduce((sum, _, i) => sum + combineUsage(r.usage.map((u) => u[i]!)).cpuSeconds, 0);
    return (seconds / r.latency.reduce((n, x) => n + x.calls, 0)) * 1e6;
  };
  const failed = (r: Measured): string => {
    const count = (xs: readonly GrpcLoadReport[]): number => xs.reduce((a, x) => a + x.errors, 0);
    const first = [...r.max, ...r.latency].find((x) => x.firstError)?.firstError;
    return `${count(r.max)} / ${count(r.latency)}${first ? ` (${first})` : ''}`;
  };
  const rows = runs.map((r) => {
    const isBase = r === base;
    const cpu = r.target.proxies.map((_, i) => combineUsage(r.usage.map((u) => u[i]!)).cpuSeconds.toFixed(2)).join(' / ');
    const perCall = isBase ? '—' : `${Math.round(cpuPerCallUs(r))} µs`;
    return [
      r.target.label,
      Math.round(rps(r)).toLocaleString('en-US'),
      nginx ? `${(rps(r) / rps(nginx)).toFixed(2)}×` : '—',
      isBase ? `(${ms(p50(r))})` : signedMs(p50(r) - p50(base)),
      isBase ? `(${ms(p99(r))})` : signedMs(p99(r) - p99(base)),
      cpu || '—',
      perCall,
      failed(r),
    ];
  });
  const lines = [
    `Measured ${machine}.`,
    '',
    markdownTable(['target', 'calls/s', '× nginx pair', `added p50 @${FIXED_RATE} calls/s`, 'added p99', `CPU s @${FIXED_RATE} calls/s (out / in)`, 'CPU per call (both proxies)', 'failed calls (max / fixed rate)'], rows),
    '',
    `Unary calls of 4 B answered with 2 B by one @grpc/grpc-js server. calls/s: a closed loop of ${CONCURRENCY} calls in flight over one channel; ` +
      `latency: ${FIXED_RATE} calls/s evenly spaced on one channel, timed from each call's scheduled start (mean of the rounds' percentiles). ` +
      `Each ${slice * rounds}s in ${rounds} rounds of ${slice}s with the targets taking turns. (A)'s row shows its own latency in parentheses. ` +
      `The load generator is itself a grpc-js client in one Node process, so (A)'s figure is bounded by the client as much as the server.`,
  ];
  for (const r of runs) {
    const notes =
      r.target.name === 'nginx'
        ? [...r.target.notes, 'grpc_pass grpcs:// between the two with client certificates, grpc_pass grpc:// to the app, `listen … http2`']
        : r.target.name === 'skein'
          ? ['mTLS between the sidecars, `protocol: grpc`, `--app-protocol grpc`, static config; no route rules, retries or intentions']
          : [];
    if (notes.length > 0) lines.push(`- ${r.target.label}: ${notes.join('; ')}`);
  }
  if (!nginx && nginxWanted) lines.push('', '(B) was not run.');
  const figures: Record<string, number> = {};
  for (const r of runs) {
    const tag = r.target.label.slice(0, 3);
    figures[`${tag} calls/s`] = rps(r);
    if (r !== base) {
      figures[`${tag} added p50 ms`] = p50(r) - p50(base);
      figures[`${tag} added p99 ms`] = p99(r) - p99(base);
      figures[`${tag} CPU µs per call (both proxies)`] = cpuPerCallUs(r);
    }
  }
  if (nginx && skein) {
    const ratio = rps(skein) / rps(nginx);
    figures['calls/s (C)/(B)'] = ratio;
    lines.push('', `Target: calls/s (C)/(B) = ${ratio.toFixed(2)}× (goal ≥ 0.5×: ${ratio >= 0.5 ? 'met' : 'not met'}).`);
  }
  return { markdown: lines.join('\n'), figures };
}
