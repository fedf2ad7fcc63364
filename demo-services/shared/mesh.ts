/**
 * How a demo service reaches another one: through its own sidecar, by service name.
 *
 * HTTP goes to the sidecar's outbound listener (`SKEIN_OUTBOUND`, default
 * `http://127.0.0.1:15001`) with `Host: <service>` (SPEC §3 addressing mode a); undici's
 * fetch forbids setting Host, so this uses an undici Pool per origin. gRPC dials the same
 * listener with `:authority` set to the service name. Apps never learn another service's port.
 *
 * Tests only: `DEMO_DIRECT_<SERVICE>=127.0.0.1:PORT` bypasses the mesh for that service, so
 * service-level tests can run without sidecars.
 */
import { Pool } from 'undici';
import type { ChannelOptions } from '@grpc/grpc-js';
import { REASONS, type Reason } from '../../common/errors.js';
import { HttpError, UpstreamError } from './http-errors.js';
import type { TraceHeaders } from './trace.js';

export const DEFAULT_OUTBOUND = 'http://127.0.0.1:15001';
const DEFAULT_TIMEOUT_MS = 10_000;

export interface Destination {
  /** Where the connection goes: the sidecar's outbound listener, or the service itself. */
  readonly origin: string;
  /** The Host / :authority naming the service, when going through the mesh. */
  readonly authority?: string;
}

export interface CallOptions {
  body?: unknown;
  headers?: Record<string, string>;
  trace?: TraceHeaders;
  timeoutMs?: number;
}

export interface Answer<T = unknown> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
}

export class Mesh {
  private readonly outbound: string;
  private readonly pools = new Map<string, Pool>();

  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {
    this.outbound = env.SKEIN_OUTBOUND ?? DEFAULT_OUTBOUND;
  }

  destination(service: string): Destination {
    const direct = this.env[`DEMO_DIRECT_${service.toUpperCase().replace(/-/g, '_')}`];
    if (direct) return { origin: direct.includes('://') ? direct : `http://${direct}` };
    return { origin: this.outbound, authority: service };
  }

  http(service: string): ServiceClient {
    const dest = this.destination(service);
    let pool = this.pools.get(dest.origin);
    if (!pool) {
      pool = new Pool(dest.origin, { connections: 64, keepAliveTimeout: 10_000 });
      this.pools.set(dest.origin, pool);
    }
    return new ServiceClient(service, pool, dest.authority);
  }

  /** Target and channel options for a @grpc/grpc-js client of `service` (h2c, prior knowledge). */
  grpc(service: string): { target: string; options: ChannelOptions } {
    const dest = this.destination(service);
    const url = new URL(dest.origin);
    const options: ChannelOptions = dest.authority ? { 'grpc.default_authority': dest.authority } : {};
    return { target: `${url.hostname}:${url.port}`, options };
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close()));
    this.pools.clear();
  }
}

export class ServiceClient {
  constructor(
    readonly service: string,
    private readonly pool: Pool,
    private readonly authority: string | undefined,
  ) {}

  /**
   * One HTTP call with a JSON body and answer. Any status comes back to the caller; only a
   * call that got no answer (connect failure, timeout, unreadable body) throws UpstreamError.
   */
  async call<T = unknown>(method: string, path: string, opts: CallOptions = {}): Promise<Answer<T>> {
    const headers: Record<string, string> = { accept: 'application/json', ...opts.trace, ...opts.headers };
    if (this.authority) headers.host = this.authority;
    let payload: string | undefined;
    if (opts.body !== undefined) {
      payload = JSON.stringify(opts.body);
      headers['content-type'] = 'application/json';
    }
    const timeout = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    try {
      const res = await this.pool.request({ method: method as 'GET', path, headers, body: payload, headersTimeout: timeout, bodyTimeout: timeout });
      const text = await res.body.text();
      let body: unknown = undefined;
      if (text.length > 0) {
        try {
          body = JSON.parse(text);
        } catch {
          body = { error: { code: 'non-json-answer', message: text.slice(0, 200) } };
        }
      }
      return { status: res.statusCode, headers: res.headers, body: body as T };
    } catch (err) {
      throw new UpstreamError(this.service, (err as Error).message, 503, (err as { code?: string }).code === 'ECONNREFUSED');
    }
  }
}

/** The answer is a sidecar's own, saying the request did not reach the service. */
export function neverDelivered(answer: Answer): boolean {
  const reason = answer.headers['x-skein-reason'];
  return typeof reason === 'string' && Object.hasOwn(REASONS, reason) && REASONS[reason as Reason].delivered === 'never';
}

/**
 * Turns a non-2xx answer into an HttpError. A response the sidecar made itself (it carries
 * x-skein-reason) becomes 503/504 upstream-unavailable, except a `bad-request` 4xx: the
 * sidecar refused the request itself (e.g. a path built from a client's `..%2F`), so the
 * service is not down and the caller gets the 4xx; and a `rate-limited` 429: the service's
 * instances took all the requests their policy's rateLimit admits, so the caller should slow
 * down (told when by Retry-After, passed on), not take it as down. The service's own errors keep their code.
 */
export function answerError(service: string, answer: Answer): HttpError {
  const reason = answer.headers['x-skein-reason'];
  if (reason === 'bad-request' && answer.status >= 400 && answer.status < 500) {
    return new HttpError(answer.status, 'bad-request', `the mesh refused the request to ${service} as malformed (${answer.status})`);
  }
  if (reason === 'rate-limited' && answer.status === 429) {
    const seconds = Number(answer.headers['retry-after']);
    if (!Number.isSafeInteger(seconds)) return new HttpError(429, 'rate-limited', `${service} is over its rate limit`);
    return new HttpError(429, 'rate-limited', `${service} is over its rate limit: retry after ${seconds}s`, { retryAfterSeconds: seconds }, { 'retry-after': String(seconds) });
  }
  if (typeof reason === 'string') {
    return new UpstreamError(service, `sidecar answered ${answer.status} (${reason})`, answer.status === 504 ? 504 : 503);
  }
  const err = (answer.body as { error?: { code?: string; message?: string } } | undefined)?.error;
  if (answer.status >= 500) return new UpstreamError(service, err?.message ?? `status ${answer.status}`);
  return new HttpError(answer.status, err?.code ?? 'upstream-error', err?.message ?? `${service} answered ${answer.status}`);
}
