/**
 * One call of Skein's own HTTP/1.1 and mux clients: the handler it reports to, its headers
 * and body timeouts, the request body it feeds (a BodySink), and the announce step both take
 * before sending anything: arm the headers timeout and hand the handler the call's control
 * (upstream-dispatcher.ts), with which it may abandon the call there (then nothing is sent).
 * The call is its own control object: no closures per call.
 */
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { hookBody, unhookBody, type BodySink } from './request-body.js';
import { codedError, headToHandler, startHandler, type AnyHandler, type CallControl } from './upstream-dispatcher.js';

function onCallTimeout(call: UpstreamCall): void {
  call.timedOut();
}

/** The error a call given up by its handler ends with. */
export function abandonedError(): Error {
  return codedError('UND_ERR_ABORTED', 'the attempt was abandoned');
}

export abstract class UpstreamCall implements BodySink, CallControl {
  done = false;
  responded = false;
  /** The answer is the peer sidecar's own, as its mux response frame said (never from a header). */
  sidecarMade = false;
  body: Readable | null = null;
  private timer: NodeJS.Timeout | undefined = undefined;

  constructor(
    readonly opts: Dispatcher.DispatchOptions,
    readonly handler: AnyHandler,
  ) {}

  /** The handler gives the call up. */
  abort(err?: Error): void {
    this.cancel(err ?? abandonedError());
  }

  /** The handler gives the call up and wants none of the rest of its answer: as abort, unless the client can keep what carries it. */
  discard(): void {
    this.abort();
  }

  /** The handler goes on after it asked to pause. */
  abstract resume(): void;

  /** Ends the call with an error, once; `cut` gives up what carries it (its connection, or its stream). */
  abstract fail(err: Error, cut: boolean): void;

  abstract bodyChunk(chunk: Buffer): boolean;

  abstract bodyEnd(): void;

  /** The handler abandoned the call. */
  protected cancel(err: Error): void {
    this.fail(err, true);
  }

  /** Arms the headers timeout and starts the handler; false when it gave the call up there. */
  announce(): boolean {
    this.armTimer(this.opts.headersTimeout);
    try {
      startHandler(this.handler, this);
    } catch (err) {
      this.fail(err as Error, true);
    }
    return !this.done;
  }

  /**
   * Hands the response head to the handler, after which the body timeout runs. False when it
   * asks to pause: only an explicit false, as in undici (its request() handler returns
   * nothing). A handler that throws fails the call (check `done`).
   */
  emitHeaders(status: number, raw: string[], statusText: string): boolean {
    this.responded = true;
    this.armTimer(this.opts.bodyTimeout);
    try {
      return headToHandler(this.handler, this, status, raw, statusText);
    } catch (err) {
      this.fail(err as Error, true);
      return true;
    }
  }

  /** Hands a body chunk to the handler; false when it asks to pause, as emitHeaders. */
  emitData(chunk: Buffer): boolean {
    try {
      return this.handler.onData(chunk) !== false;
    } catch (err) {
      this.fail(err as Error, true);
      return true;
    }
  }

  timedOut(): void {
    this.timer = undefined;
    this.fail(codedError(this.responded ? 'UND_ERR_BODY_TIMEOUT' : 'UND_ERR_HEADERS_TIMEOUT', 'the upstream did not answer in time'), true);
  }

  /** The call is over: no timer, no body fed any more. */
  finish(): void {
    this.done = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.unhookBody();
  }

  /** Feeds a request body stream to this call, chunk by chunk. */
  feed(body: Readable): void {
    this.body = body;
    hookBody(body, this);
  }

  bodyFailed(err: Error): void {
    this.body = null;
    this.fail(err, true);
  }

  unhookBody(): void {
    if (this.body === null) return;
    unhookBody(this.body);
    this.body = null;
  }

  private armTimer(ms: number | null | undefined): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = ms !== undefined && ms !== null && ms > 0 ? setTimeout(onCallTimeout, ms, this) : undefined;
  }
}
