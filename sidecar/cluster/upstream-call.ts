/**
 * One call of Skein's own HTTP/1.1 and mux clients: the handler it reports to, its headers
 * and body timeouts, the request body it feeds (a BodySink), and the announce step both take
 * before sending anything: arm the headers timeout and give the handler its abort through
 * onConnect, which may abandon the call there (then nothing is sent).
 */
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { hookBody, unhookBody, type BodySink } from './request-body.js';
import { codedError, type CallbackHandler } from './upstream-dispatcher.js';

function onCallTimeout(call: UpstreamCall): void {
  call.timedOut();
}

export abstract class UpstreamCall implements BodySink {
  done = false;
  responded = false;
  body: Readable | null = null;
  private timer: NodeJS.Timeout | undefined = undefined;
  readonly abort: (err?: Error) => void;

  constructor(
    readonly opts: Dispatcher.DispatchOptions,
    readonly handler: CallbackHandler,
  ) {
    this.abort = (err?: Error) => this.cancel(err ?? codedError('UND_ERR_ABORTED', 'the attempt was abandoned'));
  }

  /** Ends the call with an error, once; `cut` gives up what carries it (its connection, or its stream). */
  abstract fail(err: Error, cut: boolean): void;

  abstract bodyChunk(chunk: Buffer): boolean;

  abstract bodyEnd(): void;

  /** The handler abandoned the call. */
  protected cancel(err: Error): void {
    this.fail(err, true);
  }

  /** Arms the headers timeout and calls onConnect; false when the handler gave the call up there. */
  announce(): boolean {
    this.armTimer(this.opts.headersTimeout);
    try {
      this.handler.onConnect(this.abort);
    } catch (err) {
      this.fail(err as Error, true);
    }
    return !this.done;
  }

  /** What the handler calls to go on after it asked to pause. */
  abstract readonly resume: () => void;

  /**
   * Hands the response head to the handler, after which the body timeout runs. False when it
   * asks to pause: only an explicit false, as in undici (its request() handler returns
   * nothing). A handler that throws fails the call (check `done`).
   */
  emitHeaders(status: number, raw: string[], statusText: string): boolean {
    this.responded = true;
    this.armTimer(this.opts.bodyTimeout);
    try {
      return this.handler.onHeaders(status, raw, this.resume, statusText) !== false;
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
