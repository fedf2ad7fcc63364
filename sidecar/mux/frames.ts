/**
 * Skein's sidecar-to-sidecar transport for HTTP/1.1 traffic: many requests multiplexed on one
 * connection as frames, and every frame queued during one turn of the event loop written
 * with a single socket write.
 *
 * Why: with one request per connection each request costs a TLS record, an encryption and a
 * write syscall on each side, and those writes were over 40% of a sidecar's busy time. With
 * 16 callers in flight the frames of one loop turn go out as one record (measured in
 * throw-away pairs on this machine: 1:1 HTTP/1.1 0.55x the nginx pair's rps, multiplexed and
 * batched 0.94x). Node's HTTP/2 does multiplex, but its per-stream cost made a pair 0.17x.
 *
 * A frame is a 10-byte header, then its payload:
 *
 *   u32 payload length | u8 type | u8 flags | u32 stream id
 *
 * Heads (request, response, trailers) are HTTP/1.1-style text in latin1: a first line
 * (`METHOD target` or `status reason`), then `name: value` lines, each ended by CRLF. Header
 * values cannot hold CR or LF (both HTTP parsers in front of this refuse them), so the lines
 * need no escaping; the receiving end holds them to the same rules again (heads.ts), as it
 * trusts a peer's certificate, not its bytes.
 *
 * A response head made by the serving sidecar itself (SPEC §6: no app answer, `x-skein-reason`
 * set) carries the SIDECAR_MADE flag. A plain header cannot say so: an app may send any header,
 * `x-skein-reason` included (a gateway relaying another sidecar's answer), and the caller
 * replays a POST only on its peer's own `upstream-connect-failure` (HTTP/2 between sidecars
 * marks it with a header no app can forge: ../h2-sidecar-made.ts). Mixed versions need no
 * negotiation: a sidecar without the flag ignores flag bits other than END_STREAM on a
 * response, and one that never sets it is simply not believed (a POST its app never got is
 * then not replayed, the safe side of the rule).
 *
 * Flow control is per stream and credit based: a sender may have WINDOW bytes of DATA
 * unacknowledged; the receiver returns credit (WINDOW frames) as it hands data on, so a slow
 * reader holds up only its own stream.
 *
 * A caller whose certificate the server refuses is told so by a GOAWAY with REFUSED, its
 * payload the reason, before the server closes the connection: under TLS 1.3 the client's
 * handshake is over before the server has judged the client's certificate, node's TLS server
 * sends no alert for it, and the caller would see only a closed connection, which cannot say
 * whether the requests it sent meanwhile were read. Mixed versions need no negotiation either:
 * a sidecar that does not know the flag takes it for a plain GOAWAY (its calls then fail as
 * resets, as before), and one that never sends it leaves its callers to see the close. The
 * caller takes the flag on trust, replaying even a POST elsewhere: only a server that passed
 * the caller's SPIFFE check for the destination can send it, and a Skein inbound sends it
 * before it reads anything (listeners.ts), as its first and only frame.
 *
 * Liveness: the client sends PING on a connection it has heard nothing on for a while and
 * gives the connection up when no answer follows (upstream.ts), as HTTP/2 keepalive does: a
 * peer that vanished without a FIN or RST (a host gone, a dropped NAT entry) would otherwise
 * hold calls until their timeouts, and every later call after them.
 */
import type { Socket } from 'node:net';

export const enum FrameType {
  /** Client → server: request head; END_STREAM when there is no body. */
  Request = 1,
  /** Server → client: response head; END_STREAM when there is no body. */
  Response = 2,
  Data = 3,
  /** Ends the stream with trailer lines (no first line). */
  Trailers = 4,
  /** Abandons the stream; the payload says why (text). */
  Reset = 5,
  /** Payload: u32 bytes of credit returned for the stream. */
  Window = 6,
  /** Stream 0: the server takes no new streams on this connection; open ones finish. */
  GoAway = 7,
  /** Stream 0: are you there? Answered with the same 8-byte payload and ACK set. */
  Ping = 8,
}

export const END_STREAM = 1;
/** On RESPONSE: the serving sidecar made this answer itself; its app did not (see above). */
export const SIDECAR_MADE = 2;
/** On PING: this is the answer. */
const ACK = 1;
/**
 * On RESET: the server refused the stream unprocessed, over its stream limit. On GOAWAY, as
 * the connection's first frame: the server refused the caller's certificate and reads nothing
 * of the connection; the payload says why (see above).
 */
export const REFUSED = 2;
/**
 * Streams open at once on one connection, at most. The server refuses a stream past it (a
 * peer's bug or abuse must not hold unbounded requests on one sidecar); the client keeps
 * calls past it waiting for a free stream, as HTTP/2 clients do under
 * SETTINGS_MAX_CONCURRENT_STREAMS. As many as a circuit breaker admits by default.
 */
export const MAX_STREAMS = 1024;
const PING_BYTES = 8;
export const HEADER_BYTES = 10;
/** Per-stream credit in each direction. */
export const WINDOW = 256 * 1024;
/** Frames larger than this are a protocol error (DATA is cut to fit). */
export const MAX_PAYLOAD = 1024 * 1024;
/** Negotiated by TLS ALPN: the mux runs only between sidecars with identities. */
export const ALPN = 'skein-mux/1';

export type FrameListener = (type: FrameType, flags: number, id: number, payload: Buffer) => void;

/** Splits a byte stream into frames. Returns an error message for a malformed frame. */
export class FrameReader {
  private pending: Buffer | null = null;

  constructor(private readonly onFrame: FrameListener) {}

  push(chunk: Buffer): string | undefined {
    const buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    let off = 0;
    while (buf.length - off >= HEADER_BYTES) {
      const length = buf.readUInt32BE(off);
      if (length > MAX_PAYLOAD) return `frame of ${length} bytes exceeds ${MAX_PAYLOAD}`;
      const end = off + HEADER_BYTES + length;
      if (end > buf.length) break;
      this.onFrame(buf[off + 4]! as FrameType, buf[off + 5]!, buf.readUInt32BE(off + 6), buf.subarray(off + HEADER_BYTES, end));
      off = end;
    }
    this.pending = off === buf.length ? null : buf.subarray(off);
    return undefined;
  }
}

function flushWriter(w: FrameWriter): void {
  w.flush();
}

/**
 * Queues frames and writes them once per event-loop turn (setImmediate runs after every I/O
 * callback of the turn, so the requests or responses of that turn share one write).
 */
export class FrameWriter {
  private parts: Buffer[] = [];
  private scheduled = false;

  constructor(private readonly socket: Socket) {}

  /** A frame whose payload is latin1 text, encoded straight into the frame's buffer. */
  text(type: FrameType, flags: number, id: number, text: string): void {
    this.queue(textFrame(type, flags, id, text));
  }

  /** A frame with a binary payload (DATA): header and payload queued apart, not copied. */
  data(flags: number, id: number, payload: Buffer): void {
    let off = 0;
    // Larger chunks go as several frames; END_STREAM on the last.
    while (payload.length - off > MAX_PAYLOAD) {
      this.data(0, id, payload.subarray(off, off + MAX_PAYLOAD));
      off += MAX_PAYLOAD;
    }
    const rest = off === 0 ? payload : payload.subarray(off);
    const header = Buffer.allocUnsafe(HEADER_BYTES);
    writeHeader(header, rest.length, FrameType.Data, flags, id);
    this.queue(header);
    if (rest.length > 0) this.queue(rest);
  }

  /** A PING to the peer: are you there? */
  ping(payload: Buffer): void {
    this.control(FrameType.Ping, 0, payload);
  }

  /** What a PING received from the peer is owed: the same payload back with ACK (nothing for an answer, or a malformed one). */
  answerPing(flags: number, payload: Buffer): void {
    if ((flags & ACK) === 0 && payload.length === PING_BYTES) this.control(FrameType.Ping, ACK, payload);
  }

  /** A stream-0 frame with a small binary payload, copied into the frame. */
  private control(type: FrameType, flags: number, payload: Buffer): void {
    const frame = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
    writeHeader(frame, payload.length, type, flags, 0);
    payload.copy(frame, HEADER_BYTES);
    this.queue(frame);
  }

  /** A frame with a 4-byte number as payload (WINDOW). */
  number(type: FrameType, id: number, value: number): void {
    const frame = Buffer.allocUnsafe(HEADER_BYTES + 4);
    writeHeader(frame, 4, type, 0, id);
    frame.writeUInt32BE(value, HEADER_BYTES);
    this.queue(frame);
  }

  empty(type: FrameType, flags: number, id: number): void {
    const frame = Buffer.allocUnsafe(HEADER_BYTES);
    writeHeader(frame, 0, type, flags, id);
    this.queue(frame);
  }

  private queue(buf: Buffer): void {
    this.parts.push(buf);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(flushWriter, this);
    }
  }

  flush(): void {
    this.scheduled = false;
    const parts = this.parts;
    if (parts.length === 0 || this.socket.destroyed) {
      this.parts = [];
      return;
    }
    this.parts = [];
    // One buffer, one TLS record: node's TLS socket would copy a writev into one buffer anyway.
    this.socket.write(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
  }
}

function textFrame(type: FrameType, flags: number, id: number, text: string): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_BYTES + text.length);
  writeHeader(frame, text.length, type, flags, id);
  frame.write(text, HEADER_BYTES, 'latin1');
  return frame;
}

/** The GOAWAY that refuses a caller's certificate, `why` its text; written on its own, as the connection's only frame. */
export function refusalFrame(why: string): Buffer {
  return textFrame(FrameType.GoAway, REFUSED, 0, why);
}

function writeHeader(buf: Buffer, length: number, type: FrameType, flags: number, id: number): void {
  buf.writeUInt32BE(length, 0);
  buf[4] = type;
  buf[5] = flags;
  buf.writeUInt32BE(id, 6);
}

/** `first\r\nname: value\r\n...` from a flat `[name, value, ...]` list. */
export function encodeHead(first: string, headers: readonly string[]): string {
  let text = first;
  text += '\r\n';
  for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return text;
}
