/** Polling with a deadline (never a bare sleep), failing at once if a process it depends on exits. */
import type { ManagedProcess } from './processes.js';

export interface WaitOptions {
  readonly timeoutMs: number;
  /** What is being waited for, for the timeout message. */
  readonly what: string;
  readonly intervalMs?: number;
  /** Give up as soon as one of these has exited. */
  readonly watch?: readonly ManagedProcess[];
}

export async function waitFor<T>(check: () => Promise<T | undefined | false> | T | undefined | false, options: WaitOptions): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let last: unknown;
  for (;;) {
    const dead = options.watch?.find((p) => !p.running);
    if (dead) throw new Error(`while waiting for ${options.what}: ${dead.describeExit()}`);
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const detail = last ? ` (last error: ${(last as Error).message})` : '';
      throw new Error(`timed out after ${Math.round(options.timeoutMs / 1000)} s waiting for ${options.what}${detail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 100));
  }
}

/** GET `url` and say whether it answered 200. */
export async function answers200(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  await res.arrayBuffer();
  return res.status === 200;
}

/** `promise`, or an error naming `what` if it has not settled within `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${Math.round(ms / 1000)} s waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
