/**
 * The CLI's client of the control plane's admin API: finds it with `--control-plane URL`
 * or SKEIN_ADMIN_URL (default http://127.0.0.1:15080), authenticates with
 * SKEIN_ADMIN_TOKEN, and turns error bodies into AdminApiError with the server's message.
 * Every request has a deadline, so a server that accepts the connection but never answers
 * fails the command instead of hanging it. Requests go through undici's `request`, not
 * `fetch`: fetch refuses the ports browsers block (10080, 6000, 6665-6669, …), on which a
 * control plane may well listen.
 */
import { STATUS_CODES } from 'node:http';
import { Readable } from 'node:stream';
import { request, type Dispatcher } from 'undici';
import { formatDuration } from '../common/config/duration.js';
import { COMPONENT_HEADER } from '../common/http/component.js';
import type { Expected } from './answers.js';

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:15080';
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/**
 * The most of an answer the CLI reads. A control plane's answers are the stored config and the
 * registry, which its snapshots carry to every sidecar at every change: a mesh whose answers
 * came near this would have each sidecar take in and parse tens of MiB of JSON per change, as
 * the push stream's own limit is 64 MiB. Something else answering without end is cut here,
 * not read until the CLI runs out of memory.
 */
export const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

export class AdminApiError extends Error {
  override name = 'AdminApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly problems: readonly string[] = [],
    /** Seconds after which the same request may pass, from the answer's `Retry-After` (a 503 during the resync hold after a start). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export interface AdminResponse<T> {
  readonly status: number;
  readonly headers: Headers;
  readonly body: T;
}

export interface RequestOptions<T> {
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
  /** The shape a successful answer must have; anything else is not a Skein control plane's. */
  readonly expected?: Expected<T>;
}

export class AdminClient {
  readonly baseUrl: string;

  constructor(
    baseUrl: string = DEFAULT_ADMIN_URL,
    private readonly token?: string,
    private readonly timeoutMs: number = DEFAULT_REQUEST_TIMEOUT_MS,
  ) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
  }

  async request<T>(method: string, path: string, options: RequestOptions<T> = {}): Promise<AdminResponse<T>> {
    const headers = this.headers(options.headers);
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    // One deadline for the whole exchange, the body included: a server may stall mid-answer.
    const signal = AbortSignal.timeout(this.timeoutMs);
    const res = await this.send(path, { method: method as Dispatcher.HttpMethod, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body), signal });
    const body = parseBody(await this.text(path, res));
    if (!isOk(res.statusCode)) throw this.apiError(path, res, body);
    if (options.expected && !options.expected.matches(body, res.statusCode)) throw this.notSkein(path, `something other than ${options.expected.what}`);
    return { status: res.statusCode, headers: toHeaders(res.headers), body: body as T };
  }

  /**
   * Opens a long-lived answer (Server-Sent Events): the deadline bounds only the wait for
   * its headers, so a quiet stream is never cut.
   */
  async stream(path: string): Promise<ReadableStream<Uint8Array>> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new DOMException('headers not received in time', 'TimeoutError')), this.timeoutMs);
    let res: Dispatcher.ResponseData;
    try {
      res = await this.send(path, { method: 'GET', headers: this.headers({ accept: 'text/event-stream' }), signal: abort.signal });
    } finally {
      clearTimeout(timer);
    }
    if (!isOk(res.statusCode)) throw this.apiError(path, res, parseBody(await this.text(path, res)));
    return Readable.toWeb(res.body) as ReadableStream<Uint8Array>;
  }

  /** The answer's body as text, of at most MAX_ANSWER_BYTES (a larger one fails, naming the URL). */
  private async text(path: string, res: Dispatcher.ResponseData): Promise<string> {
    const tooLarge = () => this.notSkein(path, `more than ${MAX_ANSWER_BYTES / 1024 / 1024} MiB, more than the CLI reads`);
    if (Number(res.headers['content-length']) > MAX_ANSWER_BYTES) {
      discard(res);
      throw tooLarge();
    }
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        // Leaving the loop destroys the body: the rest is not read.
        if (size > MAX_ANSWER_BYTES) throw tooLarge();
        chunks.push(chunk);
      }
    } catch (err) {
      throw err instanceof AdminApiError ? err : this.failure(path, err);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  get<T>(path: string, expected?: Expected<T>): Promise<AdminResponse<T>> {
    return this.request<T>('GET', path, { expected });
  }

  put<T>(path: string, body: unknown, headers?: Record<string, string>): Promise<AdminResponse<T>> {
    return this.request<T>('PUT', path, { body, headers });
  }

  post<T>(path: string, body: unknown, expected?: Expected<T>): Promise<AdminResponse<T>> {
    return this.request<T>('POST', path, { body, expected });
  }

  delete<T = unknown>(path: string, expected?: Expected<T>): Promise<AdminResponse<T>> {
    return this.request<T>('DELETE', path, { expected });
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    const headers: Record<string, string> = { accept: 'application/json', ...extra };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    return headers;
  }

  /** Sends the request; an answer from another Skein component (a sidecar's admin port) is refused before its body is read. */
  private async send(path: string, options: { method: Dispatcher.HttpMethod; headers: Record<string, string>; body?: string; signal: AbortSignal }): Promise<Dispatcher.ResponseData> {
    let res: Dispatcher.ResponseData;
    try {
      res = await request(`${this.baseUrl}${path}`, options);
    } catch (err) {
      throw this.failure(path, err);
    }
    const component = res.headers[COMPONENT_HEADER];
    if (component !== undefined && component !== 'control-plane') {
      discard(res);
      const what = component === 'sidecar' ? "a Skein sidecar's admin port" : `a Skein ${String(component)}`;
      throw new AdminApiError(
        0,
        'not-skein',
        `${this.baseUrl} is ${what}, not a Skein control plane's admin API, so its ${res.statusCode} answer to ${path} says nothing about the mesh: ` +
          `point --control-plane or SKEIN_ADMIN_URL at the control plane's --http-port (default ${DEFAULT_ADMIN_URL})`,
      );
    }
    return res;
  }

  private failure(path: string, err: unknown): AdminApiError {
    if ((err as Error).name === 'TimeoutError') {
      return new AdminApiError(0, 'timeout', `the control plane at ${this.baseUrl} did not answer within ${formatDuration(this.timeoutMs)} (set --request-timeout or SKEIN_ADMIN_TIMEOUT to wait longer)`);
    }
    // undici puts the socket's error code (ECONNREFUSED, ENOTFOUND, …) on the error itself.
    const { code, cause } = err as { code?: unknown; cause?: { code?: string; message?: string } };
    // A request undici refuses to send (a header value it cannot carry): nothing was tried on
    // the network, so saying the control plane cannot be reached would send the user looking there.
    if (code === 'UND_ERR_INVALID_ARG') return new AdminApiError(0, 'unsendable', `cannot send the request to ${this.baseUrl}${path}: ${(err as Error).message}`);
    // Connected, then closed with no answer: what the control plane's TLS gRPC port does to a
    // plain HTTP request, where "cannot reach" sent the user looking for a network problem. Still
    // 'unreachable': a control plane that dies mid-request ends it the same way, and is waited for.
    if (code === 'UND_ERR_SOCKET') {
      return new AdminApiError(
        0,
        'unreachable',
        `${this.baseUrl} closed the connection without answering (${(err as Error).message}): a control plane that went away, or no HTTP admin API there ` +
          `(the control plane's --grpc-port speaks TLS gRPC; its admin API is on --http-port, default ${DEFAULT_ADMIN_URL}) (set --control-plane or SKEIN_ADMIN_URL)`,
      );
    }
    const reason = typeof code === 'string' ? code : (cause?.code ?? cause?.message ?? (err as Error).message);
    return new AdminApiError(0, 'unreachable', `cannot reach the control plane at ${this.baseUrl}: ${reason} (set --control-plane or SKEIN_ADMIN_URL)`);
  }

  /**
   * An error answer in the admin API's shape (SPEC §5), carrying the server's message. One
   * without it (a plain 404, a proxy's HTML 502) came from something else: its status alone
   * would say nothing of where it came from, and a caller must not take its 404 for the
   * control plane's "no such thing" (status 0).
   */
  private apiError(path: string, res: Dispatcher.ResponseData, body: unknown): AdminApiError {
    const status = res.statusCode;
    const error = (body as { error?: { code?: unknown; message?: unknown; problems?: string[] } } | undefined)?.error;
    if (typeof error?.code !== 'string' || typeof error.message !== 'string') {
      const reason = STATUS_CODES[status];
      return this.notSkein(path, `${status}${reason ? ` ${reason}` : ''} without an admin API error in its body`);
    }
    const message = status === 401 && !this.token ? `${error.message} (SKEIN_ADMIN_TOKEN is not set, or blank)` : error.message;
    return new AdminApiError(status, error.code, message, error.problems ?? [], retryAfter(res.headers['retry-after']));
  }

  /** An answer no Skein admin API gives, named with the URL that gave it (`answered` says what it was). */
  notSkein(path: string, answered: string): AdminApiError {
    return new AdminApiError(0, 'not-skein', `${this.baseUrl}${path} answered ${answered}: is ${this.baseUrl} a Skein control plane's admin API? (set --control-plane or SKEIN_ADMIN_URL)`);
  }
}

/** A `Retry-After` of delay-seconds or an HTTP date (RFC 9110 §10.2.3) as whole seconds from now; undefined without a usable one. */
function retryAfter(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string') return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

/**
 * Drops an answer's body unread. Destroyed, it emits the abort as an 'error' event on the next
 * tick: a command that goes on after the refusal (`skein check` reports it and exits on its
 * own) would otherwise die of it as an unhandled error.
 */
function discard(res: Dispatcher.ResponseData): void {
  res.body.on('error', () => {});
  res.body.destroy();
}

function isOk(status: number): boolean {
  return status >= 200 && status < 300;
}

function toHeaders(raw: Dispatcher.ResponseData['headers']): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(raw)) {
    for (const v of [value ?? []].flat()) headers.append(name, v);
  }
  return headers;
}

function parseBody(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
