/**
 * A request as the pipeline reads it, from Skein's own HTTP/1.1 server (server.ts) or from a
 * peer sidecar's mux stream (sidecar/mux/server.ts): the parts of node:http's
 * IncomingMessage the stages use (method, url, rawHeaders, headers, socket) and the body as a
 * Readable, whose `_read` asks the transport for more.
 */
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';

/** Where a request's body comes from: told when the reader wants more after a push said stop. */
export interface BodySource {
  readMore(req: IncomingRequest): void;
}

function ignore(): void {}

export class IncomingRequest extends Readable {
  readonly httpVersionMajor = 1;
  /** Set by the pipeline (sidecar/exchange.ts). */
  exchange: unknown = null;
  private headerObject: Record<string, string> | null = null;

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
        out[name] = out[name] === undefined ? raw[i + 1]! : `${out[name]}, ${raw[i + 1]}`;
      }
      this.headerObject = out;
    }
    return this.headerObject;
  }

  override _read(): void {
    this.source.readMore(this);
  }
}
