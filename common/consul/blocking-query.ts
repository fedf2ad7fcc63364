/**
 * A long-running Consul blocking query (https://developer.hashicorp.com/consul/api-docs/features/blocking),
 * driven by hand rather than with the `consul` client's `watch` helper, because that helper
 * backs off without jitter, ends the watch on some errors, and re-asks at once after every
 * answer. The rules followed here:
 *
 * - index queries: the index never goes to 0 after an answer (0 becomes 1); an index that
 *   goes backwards resets to 0 (the next answer is immediate and complete);
 * - never spin: when an answer comes back with the index unchanged, the next request waits
 *   until `minIntervalMs` after the previous one started;
 * - errors back off exponentially with full jitter, and the next request after an error does
 *   not block (the agent may have restarted with a lower index);
 * - hash queries (agent endpoints) use `X-Consul-ContentHash` the same way, without order;
 * - an answer without the header is passed on and paced as an unchanged one.
 *
 * The consumer sees each answer whose cursor moved (and the first), and every error.
 */
import { EventEmitter } from 'node:events';
import { backoffDelay } from '../backoff.js';

/** The longest wait between two tries of a failing blocking query (unless backoffMaxMs says otherwise). */
export const BLOCKING_QUERY_BACKOFF_MAX_MS = 5_000;

export interface BlockingAnswer<T> {
  readonly data: T;
  /** `X-Consul-Index` (index queries) or `X-Consul-ContentHash` (hash queries); undefined when absent. */
  readonly cursor: string | undefined;
}

export interface BlockingRequest {
  /** The last cursor seen ('' for none): pass as `index` or `hash`. */
  readonly cursor: string;
  /** `wait` for Consul, e.g. "30s". */
  readonly wait: string;
  /** Client-side timeout: a little longer than `wait` plus Consul's wait/16 jitter. */
  readonly timeoutMs: number;
  /** Emit 'cancel' on it to abort the request (papi's convention). */
  readonly ctx: EventEmitter & { includeResponse: true };
}

export interface BlockingQueryOptions<T> {
  readonly kind: 'index' | 'hash';
  readonly request: (req: BlockingRequest) => Promise<BlockingAnswer<T>>;
  readonly onAnswer: (data: T) => void;
  /** `attempt` counts consecutive failures from 1; `delayMs` is the backoff before the next try. */
  readonly onError: (err: unknown, attempt: number, delayMs: number) => void;
  /** Called on the first answer after one or more errors. */
  readonly onRecovered?: (failures: number) => void;
  readonly waitMs?: number;
  readonly minIntervalMs?: number;
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
  readonly random?: () => number;
}

export const DEFAULT_WAIT_MS = 60_000;

/** Counts requests per process, for the benchmark's request-rate figure. */
export const blockingQueryStats = { requests: 0 };

export class BlockingQuery<T> {
  private stopped = false;
  private ctx: BlockingRequest['ctx'] | undefined;
  private wake: (() => void) | undefined;
  private readonly done: Promise<void>;

  constructor(private readonly options: BlockingQueryOptions<T>) {
    this.done = this.loop();
  }

  /** Ends the query, aborting a request in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.ctx?.emit('cancel');
    this.wake?.();
    await this.done;
  }

  private async loop(): Promise<void> {
    const o = this.options;
    const waitMs = o.waitMs ?? DEFAULT_WAIT_MS;
    const wait = `${Math.round(waitMs / 1000)}s`;
    const timeoutMs = waitMs + waitMs / 16 + 5_000;
    const minIntervalMs = o.minIntervalMs ?? 1_000;
    let cursor = '';
    let failures = 0;
    let first = true;
    while (!this.stopped) {
      const started = Date.now();
      const ctx = Object.assign(new EventEmitter(), { includeResponse: true as const });
      this.ctx = ctx;
      let answer: BlockingAnswer<T>;
      const failed = async (err: unknown): Promise<void> => {
        const delay = backoffDelay(failures, o.backoffBaseMs ?? 200, o.backoffMaxMs ?? BLOCKING_QUERY_BACKOFF_MAX_MS, o.random);
        failures++;
        cursor = '';
        o.onError(err, failures, delay);
        await this.sleep(delay);
      };
      try {
        blockingQueryStats.requests++;
        answer = await o.request({ cursor, wait, timeoutMs, ctx });
      } catch (err) {
        if (this.stopped) return;
        await failed(err);
        continue;
      }
      if (this.stopped) return;
      if (failures > 0) o.onRecovered?.(failures);
      // An answer without a cursor (a proxy in between dropped the header) cannot be blocked on:
      // the cursor stays, the answer is passed on, and the next request waits as after an
      // unchanged one. Taken for a reset, it made every request an immediate one, in a tight loop.
      const missing = answer.cursor === undefined;
      const next = missing ? cursor : o.kind === 'index' ? nextIndex(cursor, answer.cursor) : answer.cursor!;
      if (next !== cursor || first || missing) {
        // An answer its consumer cannot take (it threw) is an error of this request like any
        // other: backed off and asked again from scratch, never an exception out of the loop.
        try {
          o.onAnswer(answer.data);
        } catch (err) {
          await failed(err);
          continue;
        }
      }
      failures = 0;
      const moved = next !== cursor;
      cursor = next;
      first = false;
      if (!moved) await this.sleep(minIntervalMs - (Date.now() - started));
    }
  }

  private sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}

/** Consul's index rules: backwards resets to 0, otherwise at least 1. */
export function nextIndex(previous: string, answered: string | undefined): string {
  let index: bigint;
  try {
    index = BigInt(answered ?? '0');
  } catch {
    index = 0n;
  }
  const prev = previous === '' ? 0n : BigInt(previous);
  if (index < prev) return '0';
  return String(index < 1n ? 1n : index);
}
