/**
 * Upstream: one attempt of a request on one endpoint's client, driven through
 * `pool.dispatch` with this handler object (no streams, no promise, no closure per request;
 * see ControlledHandler in cluster/upstream-dispatcher.ts). It only reports events to its
 * Exchange, which owns the attempt loop; a handler whose attempt was abandoned (timeout,
 * retry, client gone) is recognised there as stale, and one that starts after being
 * abandoned aborts itself.
 */
import type { Dispatcher } from 'undici';
import { failedConnecting, TLS_HANDSHAKE_FAILED, TLS_HANDSHAKE_TIMEOUT } from '../cluster/connect-phase.js';
import { H2_NOT_NEGOTIATED, H2_REFUSED, H2_SESSION_CLOSED } from '../cluster/h2-upstream.js';
import { SELF_LOOP } from '../cluster/self-loop.js';
import { codedError, type CallControl, type ControlledHandler } from '../cluster/upstream-dispatcher.js';
import type { UpstreamEndpoint } from '../cluster/upstream-endpoint.js';
import { MUX_NOT_NEGOTIATED } from '../identity/outbound-connector.js';
import { H1_CLOSED } from '../http1/client.js';
import { MUX_CLOSED } from '../mux/upstream.js';
import type { Admission } from '../resilience/breaker.js';
import { headerText, type RawHeaders } from './headers.js';

export interface AttemptOwner {
  readonly current: AttemptHandler | null;
  onAttemptHeaders(h: AttemptHandler, status: number, raw: RawHeaders, statusText: string): boolean;
  onAttemptData(h: AttemptHandler, chunk: Buffer): boolean;
  onAttemptComplete(h: AttemptHandler, trailers: RawHeaders | Record<string, string | string[]> | null): void;
  onAttemptError(h: AttemptHandler, err: Error): void;
}

export class AttemptHandler implements ControlledHandler {
  /** Set once the call starts going out on a connection. */
  control: CallControl | null = null;
  status = 0;
  /** True once outcome was reported to breaker, outlier and the in-flight count. */
  settled = false;
  /** The ejection (its end, epoch ms) of the endpoint when this was sent to it by panic routing, else 0: its success returns the endpoint. */
  sentDuring = 0;

  constructor(
    readonly owner: AttemptOwner,
    readonly endpoint: UpstreamEndpoint,
    /** How the circuit breaker let it through, handed back when it is released (a trial that answered well becomes `Answered`, one past its bound `Attempt`). */
    public admission: Admission,
  ) {}

  /** The request started going out on a connection, and the peer did not refuse it unprocessed. */
  get connected(): boolean {
    return this.control !== null && this.control.refused !== true;
  }

  onStart(control: CallControl): void {
    this.control = control;
    if (this.owner.current !== this) control.abort();
  }

  onResponseHead(status: number, raw: RawHeaders, statusText: string): boolean {
    return this.owner.onAttemptHeaders(this, status, raw, statusText);
  }

  onData(chunk: Buffer): boolean {
    return this.owner.onAttemptData(this, chunk);
  }

  onComplete(trailers: RawHeaders | Record<string, string | string[]> | null): void {
    this.owner.onAttemptComplete(this, trailers);
  }

  onError(err: Error): void {
    this.owner.onAttemptError(this, err);
  }
}

export type AttemptDispatchOptions = Dispatcher.DispatchOptions;

/** Error codes that mean the connection was never made, so nothing of the request was sent. */
export function isConnectError(err: Error & { code?: string }): boolean {
  switch (err.code) {
    // connect(2)'s failures; an open connection can end with these codes too (cluster/connect-phase.ts).
    case 'ECONNREFUSED':
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    // No local address or port left to connect from.
    case 'EADDRNOTAVAIL':
      return failedConnecting(err);
    // The name did not resolve.
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    // The connect timeout of this sidecar's clients (http1/client.ts, cluster/h2-upstream.ts) and undici's.
    case 'UND_ERR_CONNECT_TIMEOUT':
    // The same timeout on a connection whose TLS handshake stalled (cluster/h2-upstream.ts).
    case TLS_HANDSHAKE_TIMEOUT:
    // A TLS handshake that failed, the peer's certificate refused among the causes (sidecar/identity/outbound-connector.ts).
    case TLS_HANDSHAKE_FAILED:
    // An HTTP/2 upstream that could not be opened as one (sidecar/cluster/h2-upstream.ts).
    case H2_NOT_NEGOTIATED:
    case H2_SESSION_CLOSED:
    // A stream the peer refused unprocessed that could not be sent again.
    case H2_REFUSED:
    // A peer sidecar's mux connection that could not be opened, or a closed upstream (sidecar/mux/, sidecar/http1/).
    case MUX_NOT_NEGOTIATED:
    case MUX_CLOSED:
    case H1_CLOSED:
    // An endpoint that is this sidecar's own outbound listener (sidecar/cluster/self-loop.ts).
    case SELF_LOOP:
    case DISPATCH_FAILED:
      return true;
    default:
      return false;
  }
}

/** A pool's dispatch threw instead of failing the call: the request never went out. */
export const DISPATCH_FAILED = 'ERR_SKEIN_DISPATCH_FAILED';

/** The connect failure that a pool's synchronous throw on dispatch to `endpoint` stands for. */
export function dispatchFailure(err: unknown, endpoint: string): Error {
  return codedError(DISPATCH_FAILED, `cannot connect to ${endpoint}: ${err instanceof Error ? err.message : String(err)}`);
}

/** How a connect failure is told to the caller: a system error by its code (ECONNREFUSED), Skein's own (ERR_SKEIN_…) by its message, which says more. */
export function connectFailureText(err: Error & { code?: string }): string {
  const code = err.code;
  if (code === undefined) return err.message;
  return code.startsWith('ERR_SKEIN_') ? `${err.message} (${code})` : code;
}

export function isTimeoutError(err: Error & { code?: string }): boolean {
  return err.code === 'UND_ERR_HEADERS_TIMEOUT' || err.code === 'UND_ERR_BODY_TIMEOUT';
}

/** The value of header `name` (lowercase) in raw response headers. */
export function rawHeader(raw: RawHeaders, name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const b = raw[i]!;
    if (b.length === name.length && headerText(b).toLowerCase() === name) return headerText(raw[i + 1]!);
  }
  return undefined;
}
