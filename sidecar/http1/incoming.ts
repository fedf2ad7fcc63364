/**
 * A request as the pipeline reads it, from Skein's own HTTP/1.1 server (server.ts) or from a
 * peer sidecar's mux stream (sidecar/mux/server.ts): the parts of node:http's
 * IncomingMessage the stages use (method, url, rawHeaders, headers, socket) and the body as a
 * Readable, whose `_read` asks the transport for more.
 */
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { ownEntry } from '../../common/config/own.js';
import { CallerFaultError } from '../../common/errors.js';

/** Where a request's body comes from: told when the reader wants more after a push said stop. */
export interface BodySource {
  readMore(req: IncomingRequest): void;
  /** Largest request body it lets through (`--max-request-body`); 0 for no limit. */
  readonly maxBodyBytes: number;
}

/**
 * The caller's request body cannot be read to its end (SPEC §8: malformed, past the limit):
 * the client's fault, never an endpoint's. The pipeline answers `status` with
 * `x-skein-reason: bad-request` (or cuts an answer already begun), drops the upstream
 * attempt without counting it against the endpoint, and the connection closes after.
 */
export class ClientBodyError extends CallerFaultError {}

/**
 * The request's reader (the upstream attempt) took none of its body for a while, though the
 * client had more to send: the endpoint's fault, a timeout (the route's timeouts only start
 * once the whole request is in, so this is what bounds an upstream that stops reading it).
 */
export class BodyNotReadError extends Error {
  readonly code = 'ERR_SKEIN_BODY_NOT_READ';
}

/** A request body past the limit (SPEC §8): answered `413 bad-request`. */
export class BodyTooLargeError extends ClientBodyError {
  constructor(limit: number) {
    super(`the request body exceeds the limit of ${limit} bytes (--max-request-body)`, 413);
  }
}

function ignore(): void {}

export class IncomingRequest extends Readable {
  readonly httpVersionMajor = 1;
  /** Set by the pipeline (sidecar/exchange.ts). */
  exchange: unknown = null;
  private headerObject: Record<string, string> | null = null;
  private bodyBytes = 0;
  /** The whole body has come in, whether or not it has all been read yet (see endBody). */
  received = false;

  constructor(
    private readonly source: BodySource,
    readonly socket: Socket,
    readonly method: string,
    readonly url: string,
    readonly rawHeaders: string[],
    readonly httpVersionMinor: number,
  ) {
    super();
    // Errors reach whoever reads the body (an upstream call hooks 'error'); unread, a body's
    // error must not become an uncaught exception.
    this.on('error', ignore);
  }

  get httpVersion(): string {
    return `1.${this.httpVersionMinor}`;
  }

  /** Lower-cased names, repeated values joined with ", " (as node:http shows them). */
  get headers(): Record<string, string> {
    if (this.headerObject === null) {
      const out: Record<string, string> = {};
      const raw = this.rawHeaders;
      for (let i = 0; i < raw.length; i += 2) {
        const name = raw[i]!.toLowerCase();
        const prev = ownEntry(out, name);
        out[name] = prev === undefined ? raw[i + 1]! : `${prev}, ${raw[i + 1]}`;
      }
      this.headerObject = out;
    }
    return this.headerObject;
  }

  /** A chunk of the body; past the source's limit the body fails with BodyTooLargeError instead. False: stop reading. */
  pushBody(chunk: Buffer): boolean {
    const limit = this.source.maxBodyBytes;
    if (limit > 0 && (this.bodyBytes += chunk.length) > limit) {
      if (!this.destroyed) this.destroy(new BodyTooLargeError(limit));
      return false;
    }
    return this.push(chunk);
  }

  /**
   * The body is complete: ends the stream, and emits 'received' at once, before a slow
   * reader gets to the end (the pipeline's timeouts count from the end of the request).
   */
  endBody(): void {
    this.received = true;
    this.push(null);
    this.emit('received');
  }

  override _read(): void {
    this.source.readMore(this);
  }
}
