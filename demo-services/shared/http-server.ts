/**
 * A small JSON router over node:http: routes are `METHOD /path/:param`, handlers return a
 * reply object or throw HttpError. Bodies are read only when a handler asks, capped at
 * 64 KiB, and must be JSON. Anything else thrown becomes a logged 500.
 */
import type { IncomingHttpHeaders, IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Logger } from '../../common/log.js';
import { HttpError } from './http-errors.js';
import { startTraceUnlessPresent, traceHeadersOf, type TraceHeaders } from './trace.js';

const MAX_BODY_BYTES = 64 * 1024;
const MAX_DISCARD_BYTES = 1024 * 1024;

export interface Request {
  readonly method: string;
  readonly path: string;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  readonly headers: IncomingHttpHeaders;
  /** Trace headers to forward on calls made while serving this request. */
  readonly trace: TraceHeaders;
  /** The body parsed as JSON; 400 when it is not JSON, 413 when too large. */
  json(): Promise<unknown>;
}

export interface Reply {
  status?: number;
  body?: unknown;
  headers?: Readonly<Record<string, string>>;
}

export type Handler = (req: Request) => Promise<Reply> | Reply;

interface Route {
  method: string;
  segments: string[];
  handler: Handler;
}

export interface RouterOptions {
  /**
   * The service is the mesh's edge: start a trace for a request that brings none, and answer
   * its W3C `traceresponse` so a client can look the trace up.
   */
  readonly edge?: boolean;
}

export class Router {
  private readonly routes: Route[] = [];

  constructor(private readonly options: RouterOptions = {}) {}

  add(method: string, pattern: string, handler: Handler): this {
    this.routes.push({ method, segments: splitPath(pattern), handler });
    return this;
  }

  listener(log: Logger): RequestListener {
    return (req, res) => {
      this.dispatch(req, res).catch((err: unknown) => {
        log.error({ err, method: req.method, url: req.url }, 'request failed');
        send(res, { status: 500, body: new HttpError(500, 'internal', 'internal error').toBody() });
      });
    };
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://local');
    const segments = splitPath(url.pathname);
    let pathMatched = false;
    for (const route of this.routes) {
      const params = matchSegments(route.segments, segments);
      if (!params) continue;
      pathMatched = true;
      if (route.method !== req.method) continue;
      const trace = this.options.edge ? startTraceUnlessPresent(traceHeadersOf(req.headers)) : traceHeadersOf(req.headers);
      // Set before the handler runs so error answers carry it too.
      if (this.options.edge && trace.traceparent) res.setHeader('traceresponse', trace.traceparent);
      const request: Request = {
        method: req.method,
        path: url.pathname,
        params,
        query: url.searchParams,
        headers: req.headers,
        trace,
        json: () => readJson(req),
      };
      try {
        send(res, await route.handler(request));
      } catch (err) {
        if (!(err instanceof HttpError)) throw err;
        send(res, { status: err.status, body: err.toBody(), headers: err.headers });
      }
      return;
    }
    const err = pathMatched
      ? new HttpError(405, 'method-not-allowed', `${req.method} is not allowed on ${url.pathname}`)
      : new HttpError(404, 'not-found', `no such endpoint: ${req.method} ${url.pathname}`);
    req.resume();
    send(res, { status: err.status, body: err.toBody() });
  }
}

function splitPath(path: string): string[] {
  return path.split('/').filter((s) => s.length > 0);
}

function matchSegments(pattern: string[], actual: string[]): Record<string, string> | undefined {
  if (pattern.length !== actual.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    const a = actual[i]!;
    if (p.startsWith(':')) {
      try {
        params[p.slice(1)] = decodeURIComponent(a);
      } catch {
        return undefined;
      }
    } else if (p !== a) {
      return undefined;
    }
  }
  return params;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    // Past the limit, read on without keeping anything so the client gets its 413 rather
    // than a reset; a client that keeps sending far beyond it is cut off.
    if (size > MAX_DISCARD_BYTES) {
      req.destroy();
      break;
    }
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  }
  if (size > MAX_BODY_BYTES) throw new HttpError(413, 'body-too-large', `request body is larger than ${MAX_BODY_BYTES} bytes`);
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw new HttpError(400, 'invalid-json', 'request body is empty; send a JSON object');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new HttpError(400, 'invalid-json', `request body is not valid JSON: ${(err as Error).message}`);
  }
}

function send(res: ServerResponse, reply: Reply): void {
  if (res.headersSent) return;
  const status = reply.status ?? 200;
  const headers: Record<string, string> = { ...reply.headers };
  if (reply.body === undefined) {
    res.writeHead(status, headers).end();
    return;
  }
  const payload = JSON.stringify(reply.body);
  headers['content-type'] = 'application/json; charset=utf-8';
  headers['content-length'] = String(Buffer.byteLength(payload));
  res.writeHead(status, headers).end(payload);
}
