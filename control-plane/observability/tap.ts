/**
 * Tap fan-out: `GET /api/v1/tap?service=` subscribers are served rows from the sidecars of
 * that service (both directions: requests it received and requests it made). A service's
 * sidecars tap only while someone watches: the hub sends `tap-start` leases to them when the
 * first subscriber arrives and renews them every few seconds (which also reaches sidecars
 * that connect later), and `tap-stop` when the last one leaves.
 */
import type { TapMessage, TapRow } from '../../common/proto/telemetry.js';

/** A tap's status filter: a class (`5xx`) or one status (`503`). */
export function isStatusFilter(text: string): boolean {
  return /^([1-5]xx|[1-5]\d\d)$/i.test(text);
}

export const STATUS_FILTER_RULE = 'a class such as 5xx or a status such as 503';

export interface TapFilter {
  readonly method?: string;
  readonly pathPrefix?: string;
  /** `2xx`..`5xx`, or one exact status such as `503`. */
  readonly status?: string;
  readonly direction?: 'inbound' | 'outbound';
  /** The other side of the request: the caller for inbound rows, the destination for outbound ones. */
  readonly peer?: string;
}

export interface TapEvent extends TapRow {
  /** The sidecar that saw it. */
  readonly service: string;
  readonly instance: string;
}

export interface TapCommands {
  /** Sends a command to every connected sidecar of `service`. */
  send(service: string, kind: 'tap-start' | 'tap-stop', json: string): void;
}

interface Subscriber {
  readonly service: string;
  readonly filter: TapFilter;
  readonly deliver: (event: TapEvent) => void;
  readonly onDropped: (n: number) => void;
}

export const TAP_LEASE_MS = 10_000;
const RENEW_MS = 3_000;

export function matchesTap(filter: TapFilter, row: TapRow): boolean {
  if (filter.method && row.method.toUpperCase() !== filter.method.toUpperCase()) return false;
  if (filter.pathPrefix && !row.path.startsWith(filter.pathPrefix)) return false;
  if (filter.direction && row.direction !== filter.direction) return false;
  if (filter.peer && (row.direction === 'inbound' ? row.source : row.destination) !== filter.peer) return false;
  if (filter.status) {
    const m = /^([1-5])xx$/i.exec(filter.status);
    if (m ? Math.floor(row.status / 100) !== Number(m[1]) : String(row.status) !== filter.status) return false;
  }
  return true;
}

export class TapHub {
  private readonly subscribers = new Set<Subscriber>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly commands: TapCommands) {
    this.timer = setInterval(() => this.renew(), RENEW_MS);
    this.timer.unref();
  }

  /** Starts delivering rows of `service`; call the returned function to stop. */
  subscribe(service: string, filter: TapFilter, deliver: (event: TapEvent) => void, onDropped: (n: number) => void = () => undefined): () => void {
    const sub: Subscriber = { service, filter, deliver, onDropped };
    const first = !this.watched().has(service);
    this.subscribers.add(sub);
    if (first) this.commands.send(service, 'tap-start', JSON.stringify({ ttlMs: TAP_LEASE_MS }));
    return () => {
      if (!this.subscribers.delete(sub)) return;
      if (!this.watched().has(service)) this.commands.send(service, 'tap-stop', '{}');
    };
  }

  ingest(from: { service: string; instanceId: string }, message: TapMessage): void {
    for (const sub of this.subscribers) {
      if (sub.service !== from.service) continue;
      if (message.dropped > 0) sub.onDropped(message.dropped);
      for (const row of message.rows) if (matchesTap(sub.filter, row)) sub.deliver({ ...row, service: from.service, instance: from.instanceId });
    }
  }

  close(): void {
    clearInterval(this.timer);
    for (const service of this.watched()) this.commands.send(service, 'tap-stop', '{}');
    this.subscribers.clear();
  }

  private watched(): Set<string> {
    return new Set([...this.subscribers].map((s) => s.service));
  }

  private renew(): void {
    for (const service of this.watched()) this.commands.send(service, 'tap-start', JSON.stringify({ ttlMs: TAP_LEASE_MS }));
  }
}
