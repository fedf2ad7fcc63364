/**
 * The sidecar's side of `skein tap`: closed (one boolean read per request) until the
 * control plane sends `tap-start`; then each finished request becomes a row, at most
 * `maxPerSecond` a second (the rest are counted as dropped), sent in small batches every
 * `flushMs`. A tap is a lease: without a renewed `tap-start` it closes after its ttl, so
 * a control plane that vanished never leaves a sidecar tapping.
 */
import type { TapMessage, TapRow } from '../../common/proto/telemetry.js';
import { pathOnly, type Hop } from './hop.js';

export interface TapBufferOptions {
  readonly maxPerSecond: number;
  readonly flushMs: number;
  readonly send: (message: TapMessage) => void;
  readonly now?: () => number;
}

export class TapBuffer {
  /** Read on every request; everything else only runs while it is true. */
  open = false;
  private openUntil = 0;
  private rows: TapRow[] = [];
  private dropped = 0;
  private windowStart = 0;
  private inWindow = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(private readonly options: TapBufferOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Opens the tap, or extends it, for `ttlMs`. */
  start(ttlMs: number): void {
    this.openUntil = this.now() + ttlMs;
    this.open = true;
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.flush(), this.options.flushMs);
      this.timer.unref();
    }
  }

  stop(): void {
    this.open = false;
    this.flush();
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  add(hop: Hop, status: number, seconds: number): void {
    const now = this.now();
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.inWindow = 0;
    }
    if (this.inWindow >= this.options.maxPerSecond) {
      this.dropped++;
      return;
    }
    this.inWindow++;
    const edge = hop.edge;
    this.rows.push({
      time: now,
      direction: hop.deps.direction,
      source: edge?.source ?? '',
      destination: hop.destination,
      subset: edge?.subset ?? '',
      method: hop.method,
      authority: hop.authority,
      path: pathOnly(hop.url),
      status,
      grpcStatus: hop.grpcStatus ?? -1,
      latencyMs: Math.round(seconds * 1e6) / 1e3,
      traceId: hop.traceId,
      attempts: hop.attempts,
    });
  }

  flush(): void {
    if (this.rows.length > 0 || this.dropped > 0) {
      const message: TapMessage = { rows: this.rows, dropped: this.dropped };
      this.rows = [];
      this.dropped = 0;
      this.options.send(message);
    }
    if (this.open && this.now() > this.openUntil) this.stop();
  }
}
