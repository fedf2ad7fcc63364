/**
 * The base of Skein's own upstream clients (HTTP/1.1, the sidecar mux, HTTP/2): an undici
 * Dispatcher, so `request()` (mirroring, health checks) works on them, whose close and
 * destroy (with undici's callback and promise forms) come down to one `shutdown`, which
 * waits for the connections it keeps count of.
 */
import type { Readable } from 'node:stream';
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

/** What a call lets its handler do: give it up, or go on after a pause (onHeaders/onData returned false). */
export interface CallControl {
  abort(err?: Error): void;
  /**
   * Gives the call up once its answer's head came, wanting none of the rest (a retried 5xx):
   * an HTTP/1.1 call's connection reads a small rest off and is kept (http1/client.ts
   * H1Conn.drain); elsewhere as `abort()`, whose stream reset keeps the connection anyway.
   */
  discard(): void;
  resume(): void;
  /**
   * Once the response head came: it is the peer sidecar's own answer, not its app's (the mux's
   * frame says so, mux/frames.ts SIDECAR_MADE; over HTTP/2 a header with the TLS connection's
   * token, h2-sidecar-made.ts). Absent or false for every other upstream.
   */
  readonly sidecarMade?: boolean;
  /**
   * The peer refused the call unprocessed and it could not go again (HTTP/2 REFUSED_STREAM,
   * RFC 9113 §8.7): as if it had never been sent, whatever of it went out. Absent elsewhere.
   */
  readonly refused?: boolean;
  /**
   * With `refused`, or `sidecarMade` over HTTP/2: the call's streamed body, whole again (what
   * had gone out, then the rest), for the attempt loop to send elsewhere; null when it cannot
   * be had (past the resend limit) or is not needed (a Buffer body, which the loop still
   * holds). HTTP/2 only.
   */
  readonly returnedBody?: Buffer | Readable | null;
}

/**
 * Skein's own handler (the attempt loop's): it takes its call's control object once, instead
 * of undici's abort and resume functions. Those are closures made per call, and V8 allocates
 * closures made by code it has not optimised straight in the old generation, where each one
 * keeps its call (request, response, buffers) alive through every young-generation GC until
 * the next full one. Measured in a sidecar at 1000 rps: a quarter of all it allocated
 * survived each scavenge and scavenges paused it for 3 to 7 ms; without these closures,
 * about 1 per cent and 1.3 to 1.5 ms. undici's own handlers (request(), used by mirroring and
 * health checks) still get the functions.
 */
export interface ControlledHandler {
  onStart(control: CallControl): void;
  onResponseHead(status: number, raw: string[], statusText: string): boolean;
  onData(chunk: Buffer): boolean;
  /** null: an HTTP/2 answer that ended with no trailers at all, which a gRPC answer never does whole (completeToHandler). */
  onComplete(trailers: RawHeaders | Record<string, string | string[]> | null): void;
  onError(err: Error): void;
}

export type AnyHandler = CallbackHandler | ControlledHandler;

function isControlled(handler: AnyHandler): handler is ControlledHandler {
  return (handler as Partial<ControlledHandler>).onStart !== undefined;
}

/** The call is about to go out: its handler learns how to abort it (and may do so at once). */
export function startHandler(handler: AnyHandler, control: CallControl): void {
  if (isControlled(handler)) handler.onStart(control);
  else handler.onConnect((err?: Error) => control.abort(err));
}

/** The response head reached the handler; false when it asks to pause until `control.resume()`. */
export function headToHandler(handler: AnyHandler, control: CallControl, status: number, raw: string[], statusText: string): boolean {
  if (isControlled(handler)) return handler.onResponseHead(status, raw, statusText) !== false;
  // undici's request() handler returns nothing: only an explicit false pauses.
  return handler.onHeaders(status, raw, () => control.resume(), statusText) !== false;
}

/**
 * The answer ended, with `trailers`, or with none at all (null): Skein's own handler is told
 * which (an exchange fails a gRPC answer that ended without any status), undici's gets an
 * empty set, as its own clients give it.
 */
export function completeToHandler(handler: AnyHandler, trailers: Record<string, string | string[]> | null): void {
  if (isControlled(handler)) handler.onComplete(trailers);
  else handler.onComplete(trailers ?? {});
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
