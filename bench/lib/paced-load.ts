/**
 * Open-loop load at a fixed rate, evenly spaced, for latency at a load far below capacity.
 * Run as its own process (`node dist/bench/lib/paced-load.js '<json PacedLoadOptions>'`) so
 * it never shares an event loop with what it measures; prints one JSON `PacedLoadResult`.
 *
 * Why not autocannon `-R` or hey `-q`: both pace in bursts. autocannon lets each connection
 * send its quota for the second back to back and then idle; hey's per-worker tickers fire
 * together, 16 requests at once every 16 ms. Either way "1000 rps" is measured as short
 * saturating bursts. Here request i is sent at start + i/rate on connection i mod N.
 * Latency runs from the actual send to the last body byte; like those tools this does not
 * correct coordinated omission (it hardly matters far below capacity).
 */
import { build, decodeFromCompressedBase64, encodeIntoCompressedBase64, type Histogram } from 'hdr-histogram-js';
import { pathToFileURL } from 'node:url';
import { Client, type Dispatcher } from 'undici';
import { compiledScript, runToCompletion, type ChildProcesses } from './children.js';

export interface PacedLoadOptions {
  readonly url: string;
  readonly host?: string;
  readonly rate: number;
  readonly connections: number;
  readonly durationSeconds: number;
  /**
   * Seconds of the same paced load sent first, on the same connections, and not recorded.
   * This process is a fresh Node each run: for its first seconds it JIT-compiles its own
   * code, stalls, then sends the requests it owes in a burst. Unwarmed, those bursts set
   * every target's p99 (direct alone measured 9-12 ms in its first second, under 1 ms after).
   */
  readonly warmupSeconds?: number;
}

/** One run, as the child process reports it. */
export interface PacedLoadRun {
  readonly requests: number;
  /** Sent before `requests`, not recorded (see PacedLoadOptions.warmupSeconds). */
  readonly warmupRequests: number;
  readonly errors: number;
  readonly elapsedSeconds: number;
  /** How late the generator sent its most delayed request (a busy machine delays timers). */
  readonly maxSendLagMs: number;
  /** Latencies in microseconds, an HdrHistogram compressed to base64 (so runs can be merged). */
  readonly histogram: string;
}

/** One or more runs merged. */
export interface LatencySummary {
  readonly requests: number;
  readonly errors: number;
  readonly achievedRps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
  readonly maxSendLagMs: number;
}

const newHistogram = () => build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });

export function summarize(runs: readonly PacedLoadRun[]): LatencySummary {
  if (runs.length === 0) throw new Error('no latency runs to summarize');
  const merged = newHistogram();
  for (const run of runs) merged.add(decodeFromCompressedBase64(run.histogram));
  const ms = (p: number): number => merged.getValueAtPercentile(p) / 1000;
  const requests = runs.reduce((sum, r) => sum + r.requests, 0);
  return {
    requests,
    errors: runs.reduce((sum, r) => sum + r.errors, 0),
    achievedRps: requests / runs.reduce((sum, r) => sum + r.elapsedSeconds, 0),
    p50Ms: ms(50),
    p99Ms: ms(99),
    p999Ms: ms(99.9),
    maxMs: merged.maxValue / 1000,
    maxSendLagMs: Math.max(...runs.map((r) => r.maxSendLagMs)),
  };
}

export async function pacedLoad(options: PacedLoadOptions): Promise<PacedLoadRun> {
  const url = new URL(options.url);
  const clients = Array.from({ length: options.connections }, () => new Client(url.origin, { pipelining: 1, keepAliveTimeout: 60_000 }));
  const request = { path: url.pathname + url.search, method: 'GET' as const, headers: options.host ? { host: options.host } : {} };
  try {
    const warmup = options.warmupSeconds ? await sendPaced(clients, request, options.rate, options.warmupSeconds, newHistogram()) : undefined;
    const histogram = newHistogram();
    const run = await sendPaced(clients, request, options.rate, options.durationSeconds, histogram);
    // A failure while warming up is still a failure of the target.
    return { ...run, errors: run.errors + (warmup?.errors ?? 0), warmupRequests: warmup?.requests ?? 0, histogram: encodeIntoCompressedBase64(histogram) };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

/** Sends `rate × seconds` requests, request i at start + i/rate on connection i mod N, recording each latency. */
async function sendPaced(
  clients: readonly Client[],
  request: Dispatcher.RequestOptions,
  rate: number,
  seconds: number,
  histogram: Histogram,
): Promise<Omit<PacedLoadRun, 'histogram' | 'warmupRequests'>> {
  const total = Math.round(rate * seconds);
  const intervalMs = 1000 / rate;
  let sent = 0;
  let done = 0;
  let errors = 0;
  let maxSendLagMs = 0;
  const start = performance.now();

  const send = (i: number): Promise<void> => {
    const t0 = performance.now();
    maxSendLagMs = Math.max(maxSendLagMs, t0 - (start + i * intervalMs));
    return clients[i % clients.length]!
      .request(request)
      .then(async ({ statusCode, body }) => {
        await body.dump({ limit: Infinity });
        if (statusCode < 200 || statusCode >= 400) errors++;
        histogram.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
      })
      .catch(() => {
        errors++;
      })
      .finally(() => {
        done++;
      });
  };

  const inFlight: Promise<void>[] = [];
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(total, Math.floor((performance.now() - start) / intervalMs) + 1);
      while (sent < due) inFlight.push(send(sent++));
      if (sent >= total) return resolve();
      setTimeout(tick, Math.max(0, start + sent * intervalMs - performance.now()));
    };
    tick();
  });
  await Promise.all(inFlight);
  return { requests: done, errors, elapsedSeconds: (performance.now() - start) / 1000, maxSendLagMs };
}

/** Runs `pacedLoad` in a child process (see the header for why). */
export async function runPacedLoad(children: ChildProcesses, options: PacedLoadOptions): Promise<PacedLoadRun> {
  const stdout = await runToCompletion(children, 'paced-load', process.execPath, [compiledScript(import.meta.url), JSON.stringify(options)]);
  const result = JSON.parse(stdout.trim().split('\n').pop()!) as PacedLoadRun;
  if (result.errors > 0) throw new Error(`paced load against ${options.url}: ${result.errors} of ${result.warmupRequests + result.requests} requests failed`);
  return result;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  pacedLoad(JSON.parse(process.argv[2]!) as PacedLoadOptions).then(
    (result) => process.stdout.write(`${JSON.stringify(result)}\n`),
    (err: unknown) => {
      process.stderr.write(`paced-load: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
