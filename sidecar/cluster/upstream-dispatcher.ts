/**
 * The base of Skein's own upstream clients (HTTP/1.1, the sidecar mux, HTTP/2): an undici
 * Dispatcher, so `request()` (mirroring, health checks) works on them, whose close and
 * destroy (with undici's callback and promise forms) come down to one `shutdown`, which
 * waits for the connections it keeps count of.
 */
import { Dispatcher } from 'undici';
import type { RawHeaders } from '../stages/headers.js';

/**
 * The handler callbacks these clients call: undici's callback API, as the attempt loop
 * implements it. Trailers come as a raw flat list (HTTP/1.1) or as an object (HTTP/2, the
 * mux).
 */
export interface CallbackHandler {
  onConnect(abort: (err?: Error) => void): void;
  onHeaders(status: number, raw: string[], resume: () => void, statusText: string): boolean;
  onData(chunk: Buffer): boolean;
  onComplete(trailers: RawHeaders | Record<string, string | string[]>): void;
  onError(err: Error): void;
}

/** An error with a stable code (the attempt loop tells connect failures from resets by it). */
export function codedError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

export abstract class UpstreamDispatcher<Connection = unknown> extends Dispatcher {
  protected readonly connections = new Set<Connection>();
  private closeWaiters: (() => void)[] = [];

  /** Takes no new calls; resolves once every connection is gone. `now` cuts calls in flight, else they finish. */
  protected abstract shutdown(now: boolean): Promise<void>;

  /** A connection is gone; the last one ends the wait of `allClosed`. */
  protected connectionClosed(conn: Connection): void {
    this.connections.delete(conn);
    if (this.connections.size > 0 || this.closeWaiters.length === 0) return;
    const waiters = this.closeWaiters;
    this.closeWaiters = [];
    for (const w of waiters) w();
  }

  protected allClosed(): Promise<void> {
    if (this.connections.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.closeWaiters.push(resolve));
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    const done = this.shutdown(false);
    if (callback) void done.then(callback);
    else return done;
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(errOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    const cb = typeof errOrCallback === 'function' ? errOrCallback : callback;
    const done = this.shutdown(true);
    if (cb) void done.then(cb);
    else return done;
  }
}
