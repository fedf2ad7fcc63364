/**
 * Reads that follow a change, at most `concurrency` at a time: each read is one connection
 * to the agent, and the agent refuses a client address more than `limits {
 * http_max_conns_per_client }` of them, so however many keys change at once, the reads
 * queue here instead. A key marked while its read is in flight is read again after it (the
 * change may have come after the read started); a key marked while queued is read once. A
 * failed read (or one its consumer cannot take) is tried again after an exponential backoff
 * with full jitter, as a failing blocking query is; as there, `onRecovered` comes before the
 * answer that ends the failures.
 */
import { EventEmitter } from 'node:events';
import { backoffDelay } from '../../common/backoff.js';
import { BLOCKING_QUERY_BACKOFF_MAX_MS, type BlockingRequest } from '../../common/consul/blocking-query.js';

export interface RefreshQueueOptions<T> {
  readonly concurrency: number;
  /** Reads `key`; emit 'cancel' on `ctx` aborts it (papi's convention). */
  readonly read: (key: string, ctx: BlockingRequest['ctx']) => Promise<T>;
  /** Takes what `read` answered for `key`; a throw is a failure of that read. */
  readonly onRead: (key: string, data: T) => void;
  /** `attempt` counts consecutive failures of `key` from 1; `delayMs` is the backoff before the next try. */
  readonly onError: (key: string, err: unknown, attempt: number, delayMs: number) => void;
  /** Called on the first successful read of `key` after one or more failures. */
  readonly onRecovered?: (key: string) => void;
  readonly backoffBaseMs?: number;
}

export class RefreshQueue<T> {
  /** Keys to read, in the order they were marked. */
  private readonly queued = new Set<string>();
  private readonly running = new Map<string, { ctx: BlockingRequest['ctx']; done: Promise<void> }>();
  /** Keys marked while their read was in flight. */
  private readonly again = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly retries = new Map<string, NodeJS.Timeout>();
  private stopped = false;

  constructor(private readonly options: RefreshQueueOptions<T>) {}

  /** `key` changed: read it (again) as soon as a slot is free. */
  mark(key: string): void {
    if (this.stopped) return;
    clearTimeout(this.retries.get(key));
    this.retries.delete(key);
    if (this.running.has(key)) this.again.add(key);
    else this.queued.add(key);
    this.pump();
  }

  /** `key` is no longer wanted: nothing more is read for it (a read in flight still ends). */
  forget(key: string): void {
    this.queued.delete(key);
    this.again.delete(key);
    this.failures.delete(key);
    clearTimeout(this.retries.get(key));
    this.retries.delete(key);
  }

  /** Ends every read in flight and every retry to come. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.queued.clear();
    this.again.clear();
    for (const timer of this.retries.values()) clearTimeout(timer);
    this.retries.clear();
    const running = [...this.running.values()];
    for (const r of running) r.ctx.emit('cancel');
    await Promise.all(running.map((r) => r.done));
  }

  private pump(): void {
    for (const key of this.queued) {
      if (this.running.size >= this.options.concurrency) return;
      this.queued.delete(key);
      const ctx = Object.assign(new EventEmitter(), { includeResponse: true as const });
      this.running.set(key, { ctx, done: this.run(key, ctx) });
    }
  }

  private async run(key: string, ctx: BlockingRequest['ctx']): Promise<void> {
    try {
      const data = await this.options.read(key, ctx);
      if (this.stopped) return;
      if (this.failures.delete(key)) this.options.onRecovered?.(key);
      this.options.onRead(key, data);
    } catch (err) {
      if (!this.stopped) this.failed(key, err);
    } finally {
      this.running.delete(key);
      if (this.again.delete(key)) this.queued.add(key);
      if (!this.stopped) this.pump();
    }
  }

  private failed(key: string, err: unknown): void {
    const previous = this.failures.get(key) ?? 0;
    const delay = backoffDelay(previous, this.options.backoffBaseMs ?? 200, BLOCKING_QUERY_BACKOFF_MAX_MS);
    this.failures.set(key, previous + 1);
    this.options.onError(key, err, previous + 1, delay);
    // A mark meanwhile (the key changed again) reads it at once and drops this retry.
    if (this.again.has(key)) return;
    const timer = setTimeout(() => {
      this.retries.delete(key);
      this.mark(key);
    }, delay);
    timer.unref();
    this.retries.set(key, timer);
  }
}
