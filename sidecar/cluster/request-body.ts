/**
 * A request body stream fed to an upstream call chunk by chunk: the call (its `BodySink`)
 * says when to pause and resumes the stream itself when it can take more; the end, an error
 * or a body cut off before its end (the caller went away) reach it once. Listeners are
 * module functions that find their sink through the stream, so a call adds no closures.
 */
import { performance } from 'node:perf_hooks';
import { PassThrough, type Readable } from 'node:stream';

export interface BodySink {
  /** false pauses the stream until the sink resumes it. */
  bodyChunk(chunk: Buffer): boolean;
  bodyEnd(): void;
  bodyFailed(err: Error & { code?: string }): void;
}

/** Told when a watched body grows past its limit, and when its bytes last moved (see watchBody). */
export interface BodyWatcher {
  bodyTooLarge(limit: number): void;
  /** performance.now() when a chunk of the body last went to a call. */
  bodyAt: number;
}

const SINK = Symbol('skein.bodySink');
const CAP = Symbol('skein.bodyCap');
const TAKEN = Symbol('skein.bodyTaken');
interface BodyCap {
  seen: number;
  readonly limit: number;
  readonly owner: BodyWatcher;
}
type WithSink = { [SINK]?: BodySink; [CAP]?: BodyCap; [TAKEN]?: true };

/**
 * Watches `body` as it is fed to calls, for bodies that are not watched where they are read
 * (HTTP/2: HTTP/1.1 and mux bodies are, by their connections): each chunk stamps
 * `owner.bodyAt` (its stall check, Exchange.checkBodyStall), and is counted against `limit`
 * (0 for none); past it, the chunk goes nowhere and `owner` is told.
 */
export function watchBody(body: Readable, limit: number, owner: BodyWatcher): void {
  (body as WithSink)[CAP] = { seen: 0, limit: limit > 0 ? limit : Infinity, owner };
}

function sinkOf(body: Readable): BodySink | undefined {
  return (body as WithSink)[SINK];
}

function onData(this: Readable, chunk: Buffer | string): void {
  const sink = sinkOf(this);
  if (sink === undefined) return;
  const cap = (this as WithSink)[CAP];
  if (cap !== undefined) {
    if ((cap.seen += chunk.length) > cap.limit) {
      (this as WithSink)[CAP] = undefined;
      cap.owner.bodyTooLarge(cap.limit);
      return;
    }
    cap.owner.bodyAt = performance.now();
  }
  if (!sink.bodyChunk(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)) this.pause();
}

function onEnd(this: Readable): void {
  const sink = sinkOf(this);
  if (sink === undefined) return;
  unhookBody(this);
  sink.bodyEnd();
}

function onError(this: Readable, err: Error): void {
  const sink = sinkOf(this);
  if (sink === undefined) return;
  unhookBody(this);
  sink.bodyFailed(err);
}

function onClose(this: Readable): void {
  const sink = sinkOf(this);
  if (sink === undefined || this.readableEnded) return;
  unhookBody(this);
  sink.bodyFailed(new BodyCutOffError());
}

/**
 * A request body whose stream closed before its end: its caller went away (reset its HTTP/2 or
 * mux stream, or closed its connection). That 'close' comes before the response's, which is
 * what tells the exchange its caller is gone (Exchange.onClientGone).
 */
export class BodyCutOffError extends Error {
  readonly code = 'UND_ERR_ABORTED';
  constructor() {
    super('the request body was cut off');
  }
}

const LISTENERS: readonly [string, (this: Readable, ...args: any[]) => void][] = [
  ['data', onData],
  ['end', onEnd],
  ['error', onError],
  ['close', onClose],
];

/**
 * A call has begun reading `body` (hookBody): from then on its bytes may have gone out, or be
 * flowing to nobody once the call is over, so it can never be sent again. Until then (a call
 * still connecting, or one that failed to connect) it is whole.
 */
export function bodyTaken(body: Readable): boolean {
  return (body as WithSink)[TAKEN] === true;
}

export function hookBody(body: Readable, sink: BodySink): void {
  (body as WithSink)[SINK] = sink;
  (body as WithSink)[TAKEN] = true;
  for (const [event, listener] of LISTENERS) body.on(event, listener);
  if (body.readableEnded) onEnd.call(body);
  // Failed before this call took it (e.g. past the body limit while connecting): its 'error' has been and gone.
  else if (body.errored !== null) onError.call(body, body.errored);
  else body.resume();
}

/** Stops feeding `body` to its sink (the call is over; the stream stays its owner's). */
export function unhookBody(body: Readable): void {
  if ((body as WithSink)[SINK] === undefined) return;
  (body as WithSink)[SINK] = undefined;
  for (const [event, listener] of LISTENERS) body.off(event, listener);
}

/**
 * `sent` (what went out of a body before: buffered, or sent on a call that never reached the
 * app), then the rest of `rest` as it comes (the caller's stream, no longer hooked to any
 * call), as one body to send whole. `rest` is piped, which resumes it (a paused HTTP/2 request
 * stays paused under an async iterator); its error or early close ends the new body the same
 * way, and the new body's own error is ignored once no call reads it (the exchange hears of
 * its caller's failures from the caller's stream itself).
 */
export function sentThenRest(sent: Buffer[], rest: Readable): Readable {
  const body = new PassThrough();
  body.on('error', ignore);
  for (const chunk of sent) body.write(chunk);
  rest.pipe(body);
  rest.once('error', (err) => body.destroy(err));
  rest.once('close', () => {
    if (!rest.readableEnded) body.destroy();
  });
  return body;
}

function ignore(): void {}
