/**
 * Incremental decoder of a chunked message body (RFC 9112 §7.1): chunk sizes in hex with
 * optional extensions (ignored), data, and a trailer section. Trailer lines are checked as
 * head lines are (header-lines.ts) and bounded as a head is, in bytes, whether kept or not;
 * kept (a response's, which the client forwards) as a flat `[name, value, ...]` list without
 * the fields no trailer may carry. Input may split anywhere.
 */
import { isForbiddenTrailer, pushHeaderLine } from './header-lines.js';
import { HttpParseError } from '../../common/http/parse-error.js';

const enum State {
  Size,
  Data,
  DataEnd,
  Trailer,
  Done,
}

/**
 * Where decoded data goes: the connection itself, so reading a chunked body makes no closure
 * per read (why that matters: ControlledHandler in cluster/upstream-dispatcher.ts).
 */
export interface ChunkSink {
  onChunk(chunk: Buffer): void;
}

/**
 * A chunk-size line: hex digits, spaces or tabs (as servers that pad sizes send; BWS before an
 * extension, RFC 9112 §7.1.1), then extensions, which are dropped, free of control characters
 * (a NUL, a bare CR, a vertical tab), as llhttp asks: another parser on the way may take one
 * for the line's end and frame the body otherwise.
 */
const CHUNK_SIZE_LINE = /^[0-9a-fA-F]{1,12}[ \t]*(?:;[^\x00-\x08\x0a-\x1f\x7f]*)?$/;

/** Size and trailer lines longer than this are refused. */
const MAX_LINE = 8 * 1024;

export class ChunkedDecoder {
  private state = State.Size;
  private remaining = 0;
  private line = '';
  /** Bytes of trailer lines so far, held to `maxTrailerBytes`: else endless lines would be read for ever. */
  private trailerBytes = 0;
  /** Trailer fields, once the body is done; empty when it had none or they are not kept. */
  readonly trailers: string[] = [];

  /**
   * `maxTrailerBytes`: the trailer section's limit (the reader's head limit, as llhttp counts
   * trailers); `keepTrailers` false reads and checks them without keeping any (a request's
   * are dropped, as Envoy does).
   */
  constructor(
    private readonly maxTrailerBytes: number,
    private readonly keepTrailers: boolean,
  ) {}

  get done(): boolean {
    return this.state === State.Done;
  }

  /**
   * Decodes from `buf`, handing data to `sink`; returns the bytes consumed (less than
   * `buf.length` only once the body is done: the rest belongs to the next message).
   */
  push(buf: Buffer, sink: ChunkSink): number {
    let pos = 0;
    while (pos < buf.length && this.state !== State.Done) {
      switch (this.state) {
        case State.Data: {
          const n = Math.min(this.remaining, buf.length - pos);
          sink.onChunk(buf.subarray(pos, pos + n));
          pos += n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = State.DataEnd;
          break;
        }
        case State.Size:
        case State.DataEnd:
        case State.Trailer: {
          const lf = buf.indexOf(10, pos);
          const end = lf < 0 ? buf.length : lf + 1;
          this.line += buf.toString('latin1', pos, end);
          pos = end;
          if (this.line.length > MAX_LINE) throw new HttpParseError('HPE_INVALID_CHUNK_SIZE', 'chunk size or trailer line too long');
          if (lf < 0) break;
          if (!this.line.endsWith('\r\n')) throw new HttpParseError('HPE_LF_EXPECTED', 'chunked body line not ended by CRLF');
          const text = this.line.slice(0, -2);
          this.line = '';
          this.endLine(text);
          break;
        }
        default:
          break;
      }
    }
    return pos;
  }

  private endLine(text: string): void {
    if (this.state === State.DataEnd) {
      if (text !== '') throw new HttpParseError('HPE_INVALID_CHUNK_SIZE', 'chunk data longer than its size');
      this.state = State.Size;
      return;
    }
    if (this.state === State.Trailer) {
      if (text === '') {
        this.state = State.Done;
        return;
      }
      this.trailerBytes += text.length + 2;
      if (this.trailerBytes > this.maxTrailerBytes) throw new HttpParseError('HPE_HEADER_OVERFLOW', `trailers exceed ${this.maxTrailerBytes} bytes`);
      const trailers = this.trailers;
      pushHeaderLine(text, 0, text.length, trailers);
      if (!this.keepTrailers || isForbiddenTrailer(trailers[trailers.length - 2]!)) trailers.length -= 2;
      return;
    }
    if (!CHUNK_SIZE_LINE.test(text)) throw new HttpParseError('HPE_INVALID_CHUNK_SIZE', 'invalid chunk size');
    // parseInt stops at the first character after the hex digits.
    const size = parseInt(text, 16);
    if (size === 0) this.state = State.Trailer;
    else {
      this.remaining = size;
      this.state = State.Data;
    }
  }
}
