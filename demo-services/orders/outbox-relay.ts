/**
 * Delivers the outbox to `notifications` through the mesh, in outbox order, until each event
 * is acknowledged (2xx): at least once, so the receiver de-duplicates by event id. A failed
 * delivery backs off (exponential, jittered, capped) and holds back the events behind it; a
 * 4xx other than 408/429 from notifications itself means it will never take the event, so it
 * is set aside as dead rather than blocking the rest. A 4xx the mesh made (`x-skein-reason`,
 * e.g. `no-route` while notifications has no instance, or `denied` until an intention allows
 * it) says nothing about the event: it is retried like any failed delivery.
 */
import type { Logger } from '../../common/log.js';
import type { ServiceClient } from '../shared/mesh.js';
import { backoffMs } from './backoff.js';
import type { OrderStore } from './store.js';

export interface RelayOptions {
  baseBackoffMs: number;
  maxBackoffMs: number;
  /** How often to look at the outbox when nothing wakes the relay. */
  idlePollMs: number;
  batchSize: number;
}

const DELIVERY_TIMEOUT_MS = 3_000;

export class OutboxRelay {
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: OrderStore,
    private readonly notifications: ServiceClient,
    private readonly log: Logger,
    private readonly opts: RelayOptions,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** New events were written: deliver now instead of at the next poll. */
  kick(): void {
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.kick();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (this.running) {
      let waitMs = this.opts.idlePollMs;
      try {
        waitMs = Math.min(waitMs, await this.deliverDue());
      } catch (err) {
        this.log.error({ err }, 'outbox relay pass failed');
      }
      if (this.running) await this.sleep(waitMs);
    }
  }

  /** Delivers what is due, in order; returns how long until the head of the outbox is due. */
  private async deliverDue(): Promise<number> {
    while (this.running) {
      const batch = this.store.undeliveredEvents(this.opts.batchSize);
      if (batch.length === 0) return Infinity;
      for (const event of batch) {
        const wait = event.nextAttemptAt - Date.now();
        if (wait > 0) return wait;
        if (!(await this.deliver(event))) return 0;
        if (!this.running) return 0;
      }
    }
    return 0;
  }

  /** One delivery attempt; false when the event must be retried later. */
  private async deliver(event: { seq: number; id: string; type: string; payload: string; attempts: number }): Promise<boolean> {
    let status: number | undefined;
    let fromMesh = false;
    let problem: string;
    try {
      const answer = await this.notifications.call('POST', '/events', { body: JSON.parse(event.payload), timeoutMs: DELIVERY_TIMEOUT_MS });
      status = answer.status;
      if (status >= 200 && status < 300) {
        this.store.eventDelivered(event.seq);
        if (event.attempts > 0) this.log.info({ eventId: event.id, type: event.type, attempts: event.attempts + 1 }, 'event delivered after retries');
        return true;
      }
      const reason = answer.headers['x-skein-reason'];
      fromMesh = reason !== undefined;
      problem = typeof reason === 'string' ? `sidecar answered ${status} (${reason})` : `notifications answered ${status}`;
    } catch (err) {
      problem = (err as Error).message;
    }
    if (!fromMesh && status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) {
      this.log.error({ eventId: event.id, type: event.type, status }, 'event refused by notifications; set aside');
      this.store.eventDead(event.seq, problem);
      return true;
    }
    const delay = backoffMs(event.attempts, this.opts.baseBackoffMs, this.opts.maxBackoffMs);
    this.store.eventRetry(event.seq, Date.now() + delay, problem);
    if (event.attempts === 0 || event.attempts % 10 === 0) {
      this.log.warn({ eventId: event.id, type: event.type, attempts: event.attempts + 1, retryInMs: Math.round(delay), problem }, 'event delivery failed; will retry');
    }
    return false;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(this.timer);
        this.wake = undefined;
        resolve();
      };
      this.wake = done;
      this.timer = setTimeout(done, Math.max(0, ms));
    });
  }
}
