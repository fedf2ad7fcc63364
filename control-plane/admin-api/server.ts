/**
 * The admin HTTP server (`--http-port`): dispatches on the Router, checks the bearer token
 * on routes that need it, decodes JSON bodies within a size limit, and turns every failure
 * into the uniform error body.
 */
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { COMPONENT_HEADER, type SkeinComponent } from '../../common/http/component.js';
import type { Logger } from '../../common/log.js';
import { tokenMatches } from '../admin-token.js';
import { ApiError, errorBody, NO_SUCH_ENDPOINT, toApiError } from './errors.js';
import type { ApiResponse, RequestContext, Router } from './router.js';

export interface AdminServerOptions {
  readonly router: Router;
  readonly adminToken: string;
  readonly logger: Logger;
  /** Largest request body accepted (bytes). */
  readonly maxBodyBytes: number;
}

export function createAdminServer(options: AdminServerOptions): Server {
  const server = createServer((req, res) => {
    // Says whose answer it is, so a CLI pointed at a sidecar's admin port can tell (cli/admin-client.ts).
    res.setHeader(COMPONENT_HEADER, 'control-plane' satisfies SkeinComponent);
    handle(options, req, res).catch((err: unknown) => {
      options.logger.error({ err }, 'admin API handler failed');
      if (!res.headersSent) send(res, 500, errorBody(new ApiError('internal', 'internal error')));
      else res.destroy();
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  // A request node:http cannot parse gets the uniform error body too, not node's bare status line.
  server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
    if (!socket.writable) return;
    const error = err.code === 'HPE_HEADER_OVERFLOW'
      ? new ApiError('header-too-large', 'the request line and headers are over the size limit')
      : new ApiError('bad-request', `malformed HTTP request (${err.code ?? err.message})`);
    const body = JSON.stringify(errorBody(error));
    socket.end(`HTTP/1.1 ${error.status} ${STATUS_CODES[error.status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  });
  return server;
}

/**
 * The request's target as a URL: a path is taken as it is (`//api/x` is a path, not a host), an
 * absolute form as it is. node:http passes on targets no URL parser takes (`http://[bad`):
 * those are the client's mistake, a 400.
 */
function targetUrl(target: string | undefined): URL {
  const raw = target ?? '/';
  const url = raw.startsWith('/') ? URL.parse(`http://admin${raw}`) : URL.parse(raw, 'http://admin');
  if (!url) throw new ApiError('bad-request', `malformed request target ${JSON.stringify(raw)}`);
  return url;
}

async function handle(options: AdminServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    const url = targetUrl(req.url);
    const match = options.router.match(req.method ?? 'GET', url.pathname);
    if (match.kind === 'not-found') throw new ApiError('not-found', `${NO_SUCH_ENDPOINT}${url.pathname}`);
    if (match.kind === 'method-not-allowed') {
      res.setHeader('allow', match.allowed.join(', '));
      throw new ApiError('method-not-allowed', `${req.method} is not allowed on ${url.pathname} (allowed: ${match.allowed.join(', ')})`);
    }
    if (match.spec.auth) authorize(req, options.adminToken);
    const ctx: RequestContext = {
      req,
      res,
      params: match.params,
      query: url.searchParams,
      body: () => readJsonBody(req, options.maxBodyBytes),
    };
    const response = await match.spec.handler(ctx);
    if (response) respond(res, response);
  } catch (err) {
    const apiError = toApiError(err);
    if (apiError.status >= 500) options.logger.error({ err, method: req.method, target: req.url }, 'admin API request failed');
    // An unread request body would otherwise be left on a keep-alive connection.
    if (!req.readableEnded) res.setHeader('connection', 'close');
    if (!res.headersSent) send(res, apiError.status, errorBody(apiError), apiError.headers);
    else res.destroy();
  }
}

function authorize(req: IncomingMessage, expected: string): void {
  const refuse = (message: string) => new ApiError('unauthorized', message, undefined, undefined, { 'www-authenticate': 'Bearer realm="skein"' });
  const header = req.headers.authorization;
  if (!header) throw refuse("missing Authorization: Bearer <admin token> (the admin-token file in the control plane's data dir)");
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) throw refuse('Authorization must be "Bearer <admin token>"');
  if (!tokenMatches(m[1]!, expected)) throw refuse('invalid admin token');
}

async function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  // A compressed body read as JSON failed as "not valid JSON" (400), the client's bytes blamed
  // for a coding this server does not take: that is a 415 (RFC 9110 §15.5.16), naming the coding.
  const coding = (req.headers['content-encoding'] ?? '').trim().toLowerCase();
  if (coding !== '' && coding !== 'identity') {
    throw new ApiError('unsupported-media-type', `request bodies are not taken compressed: send the JSON as it is, without Content-Encoding (got ${coding})`, undefined, undefined, {
      'accept-encoding': 'identity',
    });
  }
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json' && !type.endsWith('+json')) {
    throw new ApiError('unsupported-media-type', `send the body as JSON with Content-Type: application/json (got ${type || 'none'})`);
  }
  const declared = Number(req.headers['content-length']);
  if (declared > limit) throw new ApiError('payload-too-large', `request body of ${declared} bytes exceeds the limit of ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new ApiError('payload-too-large', `request body exceeds the limit of ${limit} bytes`);
    chunks.push(chunk);
  }
  // A leading byte order mark (PowerShell's UTF-8, some editors) is no part of the JSON, and
  // RFC 8259 §8.1 lets a parser ignore it: refused, it read as an invisible "Unexpected token".
  const text = Buffer.concat(chunks).toString('utf8').replace(/^\uFEFF/, '');
  if (text.trim() === '') throw new ApiError('bad-request', 'request body is empty; expected a JSON document');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ApiError('bad-request', `request body is not valid JSON: ${(err as Error).message}`);
  }
}

function respond(res: ServerResponse, response: ApiResponse): void {
  const status = response.status ?? 200;
  if (response.body === undefined) {
    res.writeHead(status, response.headers);
    res.end();
    return;
  }
  send(res, status, response.body, response.headers);
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body, null, 2);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}
