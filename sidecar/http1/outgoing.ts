/**
 * What every response the pipeline writes has in common, whatever carries it (Skein's
 * HTTP/1.1 server, a mux stream): node:http's `writeHead` forms, the trailers to send at the
 * end, and one 'close' after the call that ended it has returned (as node:http emits it).
 */
import { EventEmitter } from 'node:events';
import { STATUS_CODES } from 'node:http';

export type HeaderList = readonly string[] | Record<string, string>;

function emitClose(res: OutgoingBase): void {
  res.emit('close');
}

export abstract class OutgoingBase extends EventEmitter {
  /** Set by the pipeline (sidecar/exchange.ts). */
  exchange: unknown = null;
  /** The sidecar makes this answer itself (stages/reply.ts); a mux stream tells its caller so (mux/frames.ts). */
  sidecarMade = false;
  headersSent = false;
  writableEnded = false;
  protected trailers: Record<string, string> | null = null;
  protected closed = false;

  /** `writeHead(status, headers)` or `writeHead(status, reason, headers)`, headers flat or as an object. */
  writeHead(status: number, reasonOrHeaders?: string | HeaderList, maybeHeaders?: HeaderList): this {
    if (this.headersSent || this.closed) return this;
    this.headersSent = true;
    const named = typeof reasonOrHeaders === 'string';
    this.sendHead(status, named ? reasonOrHeaders : (STATUS_CODES[status] ?? 'Unknown'), flatHeaders(named ? maybeHeaders : reasonOrHeaders));
    return this;
  }

  protected abstract sendHead(status: number, reason: string, headers: readonly string[]): void;

  addTrailers(trailers: Record<string, string>): void {
    this.trailers = { ...this.trailers, ...trailers };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    process.nextTick(emitClose, this);
  }
}

/** Headers as a flat `[name, value, ...]` list. */
export function flatHeaders(headers: HeaderList | undefined): readonly string[] {
  if (headers === undefined) return [];
  if (Array.isArray(headers)) return headers;
  const out: string[] = [];
  for (const [name, value] of Object.entries(headers)) out.push(name, String(value));
  return out;
}
