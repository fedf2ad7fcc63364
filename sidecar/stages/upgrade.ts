/**
 * WebSocket upgrades (`Connection: Upgrade` + `Upgrade: websocket`, without a body; any other
 * Upgrade, such as `curl --http2`'s h2c, is a plain request, see http1/header-lines.ts): the request
 * head is rewritten (hop headers, trace headers) and sent on a fresh connection to the chosen
 * endpoint, and its answer decides what the client's connection becomes.
 *
 * - `101 Switching Protocols`: a tunnel. The 101 (and whatever came with it) goes to the
 *   client, then the bytes the client sent past its request, and from then on bytes flow
 *   both ways untouched.
 * - Any other final answer (an app without an upgrade handler answers with a plain 200): the
 *   upgrade is declined. The answer goes
 *   to the client as a response (end-to-end headers, its own framing, a chunked body chunked
 *   anew with its trailers checked, `connection: close`) and
 *   is counted with its own status; then both connections close. Nothing the client sent past
 *   the request, or sends later, reaches the endpoint: it is read and dropped, so it can never
 *   go around routing on a connection that is no longer a tunnel. The client opens a new
 *   connection for its next request, which is routed as any other.
 * - `1xx` answers before the final one (100, 103) pass through as they came.
 *
 * The route's timeout (`timeoutMs`, 0 for none) bounds the wait from the dispatch to the
 * endpoint's final answer head: when it passes the client gets `504 timeout` and both
 * connections close (a tunnel, once open, has no timeout). There are no retries. On the
 * outbound hop the endpoint's outcome goes to the outlier detector and the subset's circuit
 * breaker (EndpointVerdict): a connect failure, reset, malformed answer or timeout before the
 * answer head, or a 5xx answer, counts as a failure; a 101 or other answer as a success; a
 * client that leaves before the answer head, or the sidecar's drain timeout running out then
 * (the client is answered `503 retries-exhausted`, Exchange.cutOff), as neither. The upgrade holds its breaker place
 * (maxConcurrent) until then, not for the tunnel's life: a breaker guards an endpoint's
 * answers, and a WebSocket may stay open for hours.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Exchange } from '../exchange.js';
import { TCP_KEEPALIVE_IDLE_MS } from '../cluster/keepalive.js';
import type { OutlierDetector } from '../resilience/outlier.js';
import { Admission, type CircuitBreaker, type TrialAttempt } from '../resilience/breaker.js';
import { httpDate, isDateName } from '../../common/http/date.js';
import { ChunkedDecoder, type ChunkSink } from '../http1/chunked.js';
import { parseResponseHead, type ResponseHead } from '../http1/response-head.js';
import { EarlyBytes } from './early-bytes.js';
import { responseHeaders } from './headers.js';
import { linger, socketReply } from './reply.js';

/** Opens a connection to an endpoint (TLS to a peer sidecar, or plain). */
export type Connector = (service: string, address: string, port: number) => Socket;

const CRLFCRLF = Buffer.from('\r\n\r\n');
/** An answer head longer than this fails the upgrade (the limit request heads have, SPEC §8). */
const MAX_ANSWER_HEAD_BYTES = 64 * 1024;
/**
 * A declined answer's chunked body goes to the client chunked anew, as any answer's does
 * (http1/server.ts): its trailer section is bounded and checked by the decoder, and the
 * fields no trailer may carry are dropped, rather than passed on as they came.
 */
class ChunkWriter implements ChunkSink {
  constructor(private readonly client: Socket) {}

  onChunk(chunk: Buffer): void {
    const client = this.client;
    client.cork();
    client.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
    client.write(chunk);
    client.write('\r\n', 'latin1');
    client.uncork();
  }

  /** The last chunk and the trailer fields kept. */
  end(trailers: readonly string[]): void {
    let text = '0\r\n';
    for (let i = 0; i < trailers.length; i += 2) text += `${trailers[i]}: ${trailers[i + 1]}\r\n`;
    this.client.write(`${text}\r\n`, 'latin1');
  }
}

/** An upgrade's endpoint outcome, told once: judged at the answer head, or abandoned when the client left first. */
export interface UpgradeOutcome {
  record(failed: boolean): void;
  abandon(): void;
}

/**
 * The outbound hop's UpgradeOutcome: the outlier detector's record of the endpoint, and the
 * release of the place `admission` took in the subset's breaker (as a request's attempt
 * releases its own; a half-open circuit's trial watched through `startTrial`, as one is).
 */
export class EndpointVerdict implements UpgradeOutcome, TrialAttempt {
  constructor(
    private readonly outlier: OutlierDetector | null,
    private readonly endpointKey: string,
    private readonly breaker: CircuitBreaker | null,
    public admission: Admission,
  ) {}

  record(failed: boolean): void {
    this.outlier?.record(this.endpointKey, failed);
    this.breaker?.release(this.admission, failed ? 'failure' : 'success');
  }

  abandon(): void {
    this.breaker?.release(this.admission, 'neutral');
  }
}

const enum State {
  Connecting,
  /** The request went out; the endpoint's answer head is awaited. */
  Waiting,
  Tunnel,
  /** Relaying a declined upgrade's answer body. */
  Relaying,
  Done,
}

/** `ex` has decoded headers and stamped trace headers; the Upgrade header is added back here. `head` is what the client sent past its request so far. `verdict` gets the endpoint's outcome (null: the inbound hop's app, judged by nothing). */
export function spliceUpgrade(ex: Exchange, client: Socket, head: Buffer, upstream: Socket, timeoutMs: number, verdict: UpgradeOutcome | null): void {
  const connectEvent = (upstream as TLSSocket).encrypted ? 'secureConnect' : 'connect';
  let lines = `${ex.method} ${ex.url} HTTP/1.1\r\n`;
  const headers = ex.headers;
  for (let i = 0; i < headers.length; i += 2) lines += `${headers[i]}: ${headers[i + 1]}\r\n`;
  lines += `connection: upgrade\r\nupgrade: ${ex.upgrade}\r\n\r\n`;
  let state = State.Connecting;
  /** The answer's bytes so far, until its head is whole. */
  let pending: Buffer | null = null;
  /** The declined answer: its status, and how its body ends (a decoder, whose data `chunks` writes, bytes left, or -1 for the connection's end). */
  let declinedStatus = 0;
  let decoder: ChunkedDecoder | null = null;
  let chunks: ChunkWriter | null = null;
  let bodyLeft = -1;
  let released = false;
  let timer: NodeJS.Timeout | null = null;
  // Read until the tunnel opens or the declined answer is over, so that a client leaving meanwhile is seen.
  const early = new EarlyBytes(client, head);
  upstream.setNoDelay(true);

  const stopTimer = (): void => {
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
  };

  /** The endpoint's outcome, once its answer head came or it failed. */
  const outcome = (failed: boolean): void => {
    stopTimer();
    const v = verdict;
    verdict = null;
    v?.record(failed);
  };

  /** Ended before the endpoint's answer head, by the client or the sidecar: that says nothing about the endpoint. */
  const abandon = (): void => {
    stopTimer();
    verdict?.abandon();
    verdict = null;
  };
  client.setNoDelay(true);

  /** The exchange's response object never met a socket: its 'close' ends the in-flight count, once. */
  const release = (): void => {
    if (released) return;
    released = true;
    ex.res.emit('close');
  };

  /** No final answer came from the endpoint: the client gets a sidecar-made one, and both connections close. `endpointFailed`: the endpoint's outcome, a failure, or nothing (the sidecar's own shutdown). */
  const answerEarly = (status: 503 | 504, reason: 'retries-exhausted' | 'upstream-connect-failure' | 'timeout', why: string, endpointFailed: boolean): void => {
    state = State.Done;
    if (endpointFailed) outcome(true);
    else abandon();
    upstream.destroy();
    // Dropped: the client's connection is not a tunnel.
    early.stop();
    socketReply(client, ex.deps.proxyName, status, reason, why);
    // Its span says why, as for any answer the sidecar made (Exchange.reply).
    ex.reason = reason;
    ex.reasonDetail = why;
    ex.finish(status);
    release();
  };

  /** The endpoint failed before a final answer. Once the request went out it may have been acted on; `upstream-connect-failure` would say it was not. */
  const failEarly = (why: string): void => answerEarly(503, state === State.Connecting ? 'upstream-connect-failure' : 'retries-exhausted', why, true);

  /** The route's timeout passed before the endpoint's answer head. */
  const timedOut = (): void => {
    timer = null;
    if (state === State.Connecting || state === State.Waiting) answerEarly(504, 'timeout', `${ex.destination} did not answer the upgrade within ${timeoutMs} ms`, true);
  };
  if (timeoutMs > 0) timer = setTimeout(timedOut, timeoutMs);

  // The drain timeout ran out (Exchange.cutOff). Once the endpoint's answer began (a tunnel, a
  // declined answer going out) the client can be told nothing more: it is cut with the exit.
  ex.cutUpgrade = (detail: string): boolean => {
    if (state !== State.Connecting && state !== State.Waiting) return false;
    answerEarly(503, 'retries-exhausted', detail, false);
    return true;
  };

  const tunnel = (answerHead: Buffer, rest: Buffer): void => {
    state = State.Tunnel;
    ex.finish(101);
    client.write(rest.length > 0 ? Buffer.concat([answerHead, rest]) : answerHead);
    // What the client sent past its request belongs to the new protocol: only now may it go.
    const sent = early.stop();
    if (sent.length > 0) upstream.write(sent);
    // A splice carries a half-close: one side's FIN ends only that direction (pipe ends the
    // other socket's writable side), and what the other side still sends comes through.
    client.allowHalfOpen = true;
    upstream.allowHalfOpen = true;
    // An open tunnel has no timeout (a quiet WebSocket is normal), so dead peers are left to TCP.
    client.setKeepAlive(true, TCP_KEEPALIVE_IDLE_MS);
    upstream.setKeepAlive(true, TCP_KEEPALIVE_IDLE_MS);
    upstream.pipe(client);
    client.pipe(upstream);
  };

  const endDeclined = (): void => {
    state = State.Done;
    upstream.off('data', relay);
    upstream.destroy();
    client.end();
    ex.finish(declinedStatus);
    release();
    // Anything from the client past its request (a pipelined request, the new protocol's first bytes) is dropped.
    early.stop();
    linger(client);
  };

  /** A declined answer's body was cut or malformed: the client's response is cut too (its status is out). */
  const cutDeclined = (): void => {
    state = State.Done;
    upstream.destroy();
    client.destroy();
    ex.finish(declinedStatus);
  };

  function relay(chunk: Buffer): void {
    if (state !== State.Relaying) return;
    let complete = false;
    if (decoder !== null) {
      try {
        decoder.push(chunk, chunks!);
      } catch {
        cutDeclined();
        return;
      }
      complete = decoder.done;
      if (complete) chunks!.end(decoder.trailers);
    } else {
      let used = chunk.length;
      if (bodyLeft >= 0) {
        used = Math.min(bodyLeft, chunk.length);
        bodyLeft -= used;
        complete = bodyLeft === 0;
      }
      if (used > 0) client.write(used === chunk.length ? chunk : chunk.subarray(0, used));
    }
    if (complete) endDeclined();
    else if (client.writableNeedDrain) {
      upstream.pause();
      client.once('drain', () => upstream.resume());
    }
  }

  const decline = (answer: ResponseHead, rest: Buffer): void => {
    state = State.Relaying;
    declinedStatus = answer.status;
    const out: string[] = [];
    responseHeaders(answer.rawHeaders, out, answer.status, ex.method);
    let text = `HTTP/1.1 ${answer.status} ${answer.reason}\r\n`;
    let dated = false;
    for (let i = 0; i < out.length; i += 2) {
      text += `${out[i]}: ${out[i + 1]}\r\n`;
      if (isDateName(out[i]!)) dated = true;
    }
    if (!dated) text += `date: ${httpDate()}\r\n`;
    const noBody = ex.method === 'HEAD' || answer.status === 204 || answer.status === 304;
    if (!noBody && answer.chunked) {
      decoder = new ChunkedDecoder(MAX_ANSWER_HEAD_BYTES, true);
      chunks = new ChunkWriter(client);
      text += 'transfer-encoding: chunked\r\n';
    } else bodyLeft = noBody ? 0 : answer.contentLength;
    client.write(`${text}connection: close\r\n\r\n`, 'latin1');
    if (bodyLeft === 0) {
      endDeclined();
      return;
    }
    upstream.on('data', relay);
    if (rest.length > 0) relay(rest);
  };

  const onAnswer = (chunk: Buffer): void => {
    let buf = pending === null ? chunk : Buffer.concat([pending, chunk]);
    pending = null;
    for (;;) {
      const end = buf.indexOf(CRLFCRLF);
      if (end < 0) {
        if (buf.length > MAX_ANSWER_HEAD_BYTES) failEarly(`${ex.destination} answered the upgrade with a head over ${MAX_ANSWER_HEAD_BYTES} bytes`);
        else pending = buf;
        return;
      }
      let answer: ResponseHead;
      try {
        answer = parseResponseHead(buf.toString('latin1', 0, end));
      } catch (err) {
        failEarly(`${ex.destination} answered the upgrade with a malformed response: ${(err as Error).message}`);
        return;
      }
      const rest = buf.subarray(end + 4);
      if (answer.status >= 200 || answer.status === 101) {
        upstream.off('data', onAnswer);
        outcome(answer.status >= 500);
        if (answer.status === 101) tunnel(buf.subarray(0, end + 4), rest);
        else decline(answer, rest);
        return;
      }
      // An interim answer (100, 103): passed on; the final one follows.
      client.write(buf.subarray(0, end + 4));
      if (rest.length === 0) return;
      buf = rest;
    }
  };

  upstream.once(connectEvent, () => {
    if (state !== State.Connecting) return;
    state = State.Waiting;
    upstream.write(lines);
    upstream.on('data', onAnswer);
  });
  upstream.on('error', (err: Error & { code?: string }) => {
    if (state === State.Connecting) failEarly(`could not connect for upgrade: ${err.code ?? err.message}`);
    else if (state === State.Waiting) failEarly(`${ex.destination} reset the connection before answering the upgrade: ${err.code ?? err.message}`);
    else if (state === State.Relaying) cutDeclined();
    else if (state === State.Tunnel) client.destroy();
  });
  upstream.on('close', (hadError: boolean) => {
    if (state === State.Waiting) failEarly(`${ex.destination} closed the connection before answering the upgrade`);
    else if (state === State.Relaying) {
      // A body without a length ends with the connection; one with a length is cut short.
      if (decoder === null && bodyLeft < 0) endDeclined();
      else cutDeclined();
    } else if (state === State.Tunnel) closeAfterFlush(client, hadError);
  });
  client.on('error', () => upstream.destroy());
  client.on('close', (hadError: boolean) => {
    // Gone before the endpoint answered (else its outcome is told already).
    abandon();
    if (state === State.Tunnel) closeAfterFlush(upstream, hadError);
    else upstream.destroy();
    state = State.Done;
    release();
  });
}

/**
 * The tunnel's other socket is done both ways: `socket` can deliver nothing more in either
 * direction, but what its pipe already wrote (the last bytes, then its FIN) still goes out
 * before it closes. After an error on the other side nothing is owed: it is cut at once.
 */
function closeAfterFlush(socket: Socket, otherFailed: boolean): void {
  if (otherFailed || !socket.writableEnded || socket.writableFinished) socket.destroy();
  else socket.once('finish', () => socket.destroy());
}
