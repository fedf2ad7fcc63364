/** Closed-loop maximum throughput with wrk (`-t1 -cN -dS`), parsed from its text report. */
import type { ChildProcesses } from './children.js';
import { runToCompletion } from './children.js';

export interface WrkResult {
  readonly requests: number;
  readonly rps: number;
  /** Non-2xx/3xx responses plus socket errors (connect, read, write, timeout). */
  readonly errors: number;
}

export function parseWrkOutput(text: string): WrkResult {
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(text);
  const requests = /^\s*(\d+) requests in /m.exec(text);
  if (!rps || !requests) throw new Error(`could not read wrk's report:\n${text}`);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(text);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const socketErrors = socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0;
  return { requests: Number(requests[1]), rps: Number(rps[1]), errors: Number(non2xx?.[1] ?? 0) + socketErrors };
}

export interface WrkRun {
  readonly wrkPath: string;
  readonly url: string;
  readonly host?: string;
  readonly connections: number;
  readonly durationSeconds: number;
}

export async function runWrk(children: ChildProcesses, run: WrkRun): Promise<WrkResult> {
  const args = ['-t1', `-c${run.connections}`, `-d${run.durationSeconds}s`];
  if (run.host) args.push('-H', `Host: ${run.host}`);
  args.push(run.url);
  return parseWrkOutput(await runToCompletion(children, 'wrk', run.wrkPath, args));
}

/** Several runs as one: total requests over total time. */
export function combineWrk(runs: readonly WrkResult[]): WrkResult {
  const requests = runs.reduce((sum, r) => sum + r.requests, 0);
  const seconds = runs.reduce((sum, r) => sum + r.requests / r.rps, 0);
  return { requests, rps: requests / seconds, errors: runs.reduce((sum, r) => sum + r.errors, 0) };
}
