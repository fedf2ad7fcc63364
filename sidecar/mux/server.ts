/**
 * The server end of the sidecar-to-sidecar transport (frames.ts), on the inbound listener.
 * Each stream becomes a request/response pair shaped like node:http's (the parts the
 * pipeline uses: method, url, rawHeaders, a readable body; writeHead, write, end,
 * addTrailers, destroy, 'close' and 'drain'), so the inbound pipeline runs unchanged.
 *
 * A request with a body but no content-length is shown with `transfer-encoding: chunked`, as
 * the HTTP/1.1 request it stands for was, so the pipeline streams it on to the app.
 *
 * A peer's request is held to the rules of Skein's HTTP/1.1 server (heads.ts): a head that
 * breaks them is answered as that server answers one (400, 431 past `--max-request-headers`,
 * or 501 for a transfer coding it does not apply), on its stream alone; a body whose DATA comes to more or less than its
 * content-length fails as a malformed body does (400 bad-request, or the answer cut), and
 * none of the excess is handed on, so it can never reach the app as a request of its own.
 */
import type { Socket } from 'node:net';
import { ClientBodyError, IncomingRequest, type BodySource } from '../http1/incoming.js';
import { flatHeaders, OutgoingBase } from '../http1/outgoing.js';
import { HttpParseError } from '../../common/http/parse-error.js';
import { parsePeerRequest, type PeerRequestHead } from './heads.js';
import { encodeHead, END_STREAM, FrameReader, FrameType, FrameWriter, MAX_STREAMS, REFUSED, SIDECAR_MADE, WINDOW } from './frames.js';
import { StreamTable } from './stream-table.js';

export type MuxRequestListener = (req: MuxRequest, res: MuxResponse) => void;

export interface MuxHandlers {
  readonly request: MuxRequestListener;
  /** A request head that breaks the HTTP/1.1 rules (heads.ts), to be answered on `res` as the HTTP/1.1 server answers one. */
  readonly clientError: (err: HttpParseError, res: MuxResponse) => void;
}

/** A mux stream's request: its id, and body bytes handed on and not yet credited back to the client. */
export class MuxRequest extends IncomingRequest {
  consumed = 0;
  /** Body bytes its content-length still allows; -1 without one. */
  left: number;

  constructor(session: MuxServerSession, readonly id: number, head: PeerRequestHead) {
    super(session, session.socket, head.method, head.target, head.rawHeaders, 1);
    this.left = head.contentLength;
  }
}

export class MuxResponse extends OutgoingBase {
  /** Credit left for response body bytes. */
  sendWindow = WINDOW;
  /** write() returned false; 'drain' is due when credit comes. */
  blocked = false;

  constructor(
    readonly session: MuxServerSession,
    readonly id: number,
  ) {
    super();
  }

  /** Draining: the connection takes no new streams (HTTP/1.1's `Connection: close`). */
  set shouldKeepAlive(keep: boolean) {
    if (!keep) this.session.goAway();
  }

  get shouldKeepAlive(): boolean {
    return !this.session.goingAway;
  }

  protected sendHead(status: number, reason: string, headers: readonly string[]): void {
    this.session.writer.text(FrameType.Response, this.sidecarMade ? SIDECAR_MADE : 0, this.id, encodeHead(`${status} ${reason}`, headers));
  }

  write(chunk: Buffer | string): boolean {
    if (this.closed) return false;
    if (!this.headersSent) this.writeHead(200);
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (buf.length === 0) return true;
    this.session.writer.data(0, this.id, buf);
    this.sendWindow -= buf.length;
    if (this.sendWindow > 0) return true;
    this.blocked = true;
    return false;
  }

  end(chunk?: Buffer | string): this {
    if (this.closed || this.writableEnded) return this;
    if (!this.headersSent) this.writeHead(200);
    this.writableEnded = true;
    const writer = this.session.writer;
    const trailers = this.trailers;
    if (chunk !== undefined && chunk.length > 0) writer.data(trailers === null ? END_STREAM : 0, this.id, typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    else if (trailers === null) writer.empty(FrameType.Data, END_STREAM, this.id);
    if (trailers !== null) writer.text(FrameType.Trailers, END_STREAM, this.id, encodeHead('', flatHeaders(trailers)).slice(2));
    this.close();
    this.session.ended(this.id);
    return this;
  }

  /** Cuts the response: the client sees the stream reset. */
  destroy(err?: Error): this {
    if (this.closed) return this;
    if (!this.writableEnded) this.session.reset(this.id, err?.message ?? 'response cut off');
    this.close();
    this.session.ended(this.id);
    return this;
  }

  credited(bytes: number): void {
    this.sendWindow += bytes;
    if (this.blocked && this.sendWindow > 0) {
      this.blocked = false;
      this.emit('drain');
    }
  }

}

interface ServerStream {
  readonly req: MuxRequest;
  readonly res: MuxResponse;
}

/** One client connection: frames in, request/response pairs to the listener, frames out. */
export class MuxServerSession implements BodySource {
  readonly writer: FrameWriter;
  private readonly reader: FrameReader;
  private readonly streams = new StreamTable<ServerStream>();
  goingAway = false;

  constructor(
    readonly socket: Socket,
    private readonly handlers: MuxHandlers,
    private readonly onClose: (session: MuxServerSession) => void,
    /** `--max-request-headers`: a longer request head is answered 431 on its stream. */
    private readonly maxHeaderBytes: number,
    readonly maxBodyBytes = 0,
    private readonly maxStreams = MAX_STREAMS,
  ) {
    this.writer = new FrameWriter(socket);
    this.reader = new FrameReader((type, flags, id, payload) => this.onFrame(type, flags, id, payload));
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      const error = this.reader.push(chunk);
      if (error !== undefined) socket.destroy();
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.closed());
  }

  /** Tells the client to open no new streams here (drain); the open ones finish. */
  goAway(): void {
    if (this.goingAway) return;
    this.goingAway = true;
    this.writer.empty(FrameType.GoAway, 0, 0);
  }

  /**
   * Closes the connection at shutdown. Frames still queued for this turn (the last answers
   * of a drain) are written first, and a connection with nothing open is ended rather than
   * reset, so the caller reads them.
   */
  destroy(): void {
    this.writer.flush();
    if (this.streams.size === 0) this.socket.end();
    else this.socket.destroy();
  }

  readMore(req: IncomingRequest): void {
    this.credit(req as MuxRequest);
  }

  private credit(req: MuxRequest): void {
    if (req.consumed > 0 && this.streams.has(req.id)) {
      this.writer.number(FrameType.Window, req.id, req.consumed);
      req.consumed = 0;
    }
  }

  reset(id: number, why: string): void {
    if (!this.socket.destroyed) this.writer.text(FrameType.Reset, 0, id, why.replace(/[^\x20-\xff]/g, ' '));
  }

  ended(id: number): void {
    const s = this.streams.get(id);
    if (s === undefined) return;
    this.streams.delete(id);
    // A body the app never read stays unread: the client is told the stream is over.
    if (!s.req.readableEnded && !s.req.destroyed) s.req.destroy();
  }

  private onFrame(type: FrameType, flags: number, id: number, payload: Buffer): void {
    const end = (flags & END_STREAM) !== 0;
    if (type === FrameType.Ping) {
      this.writer.answerPing(flags, payload);
      return;
    }
    if (type === FrameType.Request) {
      if (this.streams.has(id)) return;
      if (this.streams.size >= this.maxStreams) {
        if (!this.socket.destroyed) this.writer.text(FrameType.Reset, REFUSED, id, `refused: ${this.maxStreams} streams already open on this connection`);
        return;
      }
      let head: PeerRequestHead;
      try {
        head = parsePeerRequest(payload, this.maxHeaderBytes);
      } catch (err) {
        if (!(err instanceof HttpParseError)) throw err;
        // Its stream is never opened: DATA that follows is dropped, and the caller, answered, resets it.
        this.handlers.clientError(err, new MuxResponse(this, id));
        return;
      }
      if (!end && head.contentLength < 0 && !head.chunked) head.rawHeaders.push('transfer-encoding', 'chunked');
      const req = new MuxRequest(this, id, head);
      const res = new MuxResponse(this, id);
      this.streams.set(id, { req, res });
      if (end) {
        if (req.left > 0) bodyLengthBroken(req);
        else req.push(null);
      }
      this.handlers.request(req, res);
      return;
    }
    const s = this.streams.get(id);
    if (s === undefined) return;
    switch (type) {
      case FrameType.Data: {
        const req = s.req;
        // Checked before any of the frame is handed on.
        if (req.left >= 0 && ((req.left -= payload.length) < 0 || (end && req.left > 0))) {
          bodyLengthBroken(req);
          return;
        }
        if (payload.length > 0) {
          req.consumed += payload.length;
          // Credit goes back at once while the reader keeps up, else from _read when it asks for more.
          if (req.pushBody(payload) && req.consumed >= WINDOW / 2) this.credit(req);
        }
        if (end) req.endBody();
        return;
      }
      case FrameType.Window:
        if (payload.length === 4) s.res.credited(payload.readUInt32BE(0));
        return;
      case FrameType.Reset:
        // The caller gave up: the pipeline sees its client gone (the response's 'close' first, see closed()).
        this.streams.delete(id);
        s.res.close();
        s.req.destroy();
        return;
      default:
        return;
    }
  }

  private closed(): void {
    const open = [...this.streams.values()];
    this.streams.clear();
    // The response's 'close' before the request body's: the pipeline must see its caller gone,
    // not an upstream that cut the body.
    for (const s of open) {
      s.res.close();
      s.req.destroy();
    }
    this.onClose(this);
  }
}

/**
 * DATA past the request's content-length (the app would read the excess as a request of its
 * own), or an end short of it (the app would wait for the rest, or read what comes next as
 * it): the body fails as the caller's fault.
 */
function bodyLengthBroken(req: MuxRequest): void {
  if (req.destroyed) return;
  const why = req.left < 0 ? 'more DATA than its content-length' : `the stream ended ${req.left} bytes short of its content-length`;
  req.destroy(new ClientBodyError(`malformed request body: ${why}`, 400));
}
