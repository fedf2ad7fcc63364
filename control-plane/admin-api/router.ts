/**
 * The admin API's route table. Each capability registers its routes here (config, proxies,
 * tokens, explain; later stats, tap, canaries, inject, the dashboard), with a summary and
 * its request schema, so the OpenAPI description is built from the same table the server
 * dispatches on and cannot drift from it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ZodType, ZodTypeAny, ZodTypeDef } from 'zod';
import { serviceName } from '../../common/config/schema.js';
import { ApiError } from './errors.js';
import { parameter } from './query-param.js';

export type Method = 'GET' | 'PUT' | 'POST' | 'DELETE';

export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /** The decoded JSON body; a malformed or oversized body is an ApiError. */
  body(): Promise<unknown>;
}

export interface ApiResponse {
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** A handler returns a response, or undefined when it wrote `res` itself (streams, HTML). */
export type Handler = (ctx: RequestContext) => Promise<ApiResponse | undefined>;

export interface RouteSpec {
  readonly method: Method;
  /** With `{name}` parameters, e.g. `/api/v1/routes/{service}/split`. */
  readonly path: string;
  readonly summary: string;
  /** Needs the admin bearer token; every mutating route does. */
  readonly auth: boolean;
  readonly requestBody?: ZodTypeAny;
  /** Query parameters, for the OpenAPI description. */
  readonly query?: readonly { name: string; required?: boolean; description: string }[];
  /** Status codes it answers on success, for the OpenAPI description. */
  readonly success?: number;
  /** The media type of a success that is not JSON (e.g. Prometheus text), for the OpenAPI description. */
  readonly produces?: string;
  readonly handler: Handler;
}

/**
 * What a path parameter holds, by its name, on every route that has one: the router checks it
 * when it matches a request, so a malformed one is answered alike everywhere (400 bad-request
 * naming it) before any handler runs, where each handler's own lookup answered 404, 409 or 422
 * (a 422 says a body failed validation, and there was none). A parameter not named here (a
 * dashboard file, a trace id) is its handler's to judge.
 */
const PATH_PARAMETERS: Readonly<Record<string, ZodType<string, ZodTypeDef, string>>> = { name: serviceName, service: serviceName };

interface Compiled {
  spec: RouteSpec;
  pattern: RegExp;
  names: string[];
}

export type Match =
  | { kind: 'found'; spec: RouteSpec; params: Record<string, string> }
  | { kind: 'method-not-allowed'; allowed: Method[] }
  | { kind: 'not-found' };

export class Router {
  private readonly compiled: Compiled[] = [];

  add(spec: RouteSpec): this {
    if (this.compiled.some((c) => c.spec.method === spec.method && c.spec.path === spec.path)) {
      throw new Error(`route ${spec.method} ${spec.path} is registered twice`);
    }
    const names: string[] = [];
    const source = spec.path
      .split('/')
      .map((part) => {
        const m = /^\{(\w+)\}$/.exec(part);
        if (!m) return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        names.push(m[1]!);
        return '([^/]+)';
      })
      .join('/');
    this.compiled.push({ spec, pattern: new RegExp(`^${source}$`), names });
    return this;
  }

  routes(): readonly RouteSpec[] {
    return this.compiled.map((c) => c.spec);
  }

  /** Throws an ApiError (400 bad-request) for a route it matches whose path parameters are malformed. */
  match(method: string, pathname: string): Match {
    const allowed: Method[] = [];
    for (const { spec, pattern, names } of this.compiled) {
      const m = pattern.exec(pathname);
      if (!m) continue;
      if (spec.method !== method && !(method === 'HEAD' && spec.method === 'GET')) {
        allowed.push(spec.method);
        continue;
      }
      return { kind: 'found', spec, params: Object.fromEntries(names.map((name, i) => [name, pathParameter(name, m[i + 1]!)])) };
    }
    return allowed.length > 0 ? { kind: 'method-not-allowed', allowed } : { kind: 'not-found' };
  }
}

/** Path parameter `name` as sent (`raw`, percent-encoded), decoded and checked (PATH_PARAMETERS). */
function pathParameter(name: string, raw: string): string {
  let value: string;
  try {
    value = decodeURIComponent(raw);
  } catch {
    throw new ApiError('bad-request', `{${name}} is not valid percent-encoding (got ${JSON.stringify(raw)})`);
  }
  const schema = PATH_PARAMETERS[name];
  return schema ? parameter(`{${name}}`, value, schema) : value;
}
