/**
 * One way to reach a Consul agent for the sidecar and the control plane: the `consul` npm
 * client on a keep-alive agent, with the ACL token (`CONSUL_HTTP_TOKEN_FILE` or `CONSUL_HTTP_TOKEN`) and TLS
 * (`CONSUL_CACERT`, `CONSUL_CLIENT_CERT`, `CONSUL_CLIENT_KEY`, `CONSUL_TLS_SERVER_NAME`)
 * read the way Consul's own CLI reads them. Errors are turned into one readable line
 * (`describeConsulError`) so a bad address or token is obvious in the log.
 */
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import Consul from 'consul';
import { isLoopbackHost } from '../net/loopback.js';

export type ConsulClient = InstanceType<typeof Consul>;

export interface ConsulConnection {
  readonly client: ConsulClient;
  /** The base URL as given (scheme added), for log lines and errors. */
  readonly url: string;
  /** The ACL token sent with every request, for calls made outside the client's methods. */
  readonly token: string | undefined;
  close(): void;
}

/** The HTTP status of a failed Consul call, when Consul answered at all. */
export function consulStatus(err: unknown): number | undefined {
  const e = err as { statusCode?: number; response?: { statusCode?: number } } | undefined;
  return e?.statusCode ?? e?.response?.statusCode;
}

/** `host`, `host:port`, `[v6]` or `[v6]:port`: the forms without a scheme. */
const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::\d+)?$/;

/** The agent URL of `address` (a URL, or `host:port` as `CONSUL_HTTP_ADDR` allows); throws saying why it is none. */
export function consulUrl(address: string, env: NodeJS.ProcessEnv = process.env): URL {
  const hasScheme = /^[a-z]+:\/\//i.test(address);
  const notUrl = new Error(`${JSON.stringify(address)} is not a URL (use e.g. http://127.0.0.1:8500)`);
  // Without "://" only a host and port: `http:/127.0.0.1:8500` would otherwise be host "http".
  if (!hasScheme && !HOST_PORT.test(address)) throw notUrl;
  let url: URL;
  try {
    url = new URL(hasScheme ? address : `${env.CONSUL_HTTP_SSL === 'true' ? 'https' : 'http'}://${address}`);
  } catch {
    throw notUrl;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`${address}: only http:// and https:// are supported`);
  return url;
}

/**
 * The client's base URL, `<url>/v1`. The client (papi) sends each request to its base URL's
 * `hostname`, which keeps an IPv6 address in brackets (`[::1]`), a name no resolver knows;
 * so here it is without them. (From a host and a port, the client would build
 * `http://::1:8500/v1`, no URL at all.)
 */
function requestBaseUrl(url: URL): URL {
  return Object.defineProperty(new URL('/v1', url), 'hostname', { value: url.hostname.replace(/^\[(.*)\]$/, '$1') });
}

/**
 * Opens a client for `address` (`http://host:8500`, `https://host:8501` or `host:port`, as
 * `CONSUL_HTTP_ADDR` allows). `env` is process.env unless a test passes its own.
 */
export function connectConsul(address: string, env: NodeJS.ProcessEnv = process.env): ConsulConnection {
  const url = consulUrl(address, env);
  const secure = url.protocol === 'https:';
  const file = (name: string): Buffer | undefined => {
    const path = env[name];
    if (!path) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(`skein: ${name}=${path}: ${(err as Error).message}`);
    }
  };
  const agent = secure
    ? new HttpsAgent({
        keepAlive: true,
        ca: file('CONSUL_CACERT'),
        cert: file('CONSUL_CLIENT_CERT'),
        key: file('CONSUL_CLIENT_KEY'),
        servername: env.CONSUL_TLS_SERVER_NAME || undefined,
        rejectUnauthorized: env.CONSUL_HTTP_SSL_VERIFY !== 'false',
      })
    : new HttpAgent({ keepAlive: true });
  // As Consul's CLI: a non-empty CONSUL_HTTP_TOKEN_FILE (how consul-k8s mounts a token) wins over CONSUL_HTTP_TOKEN.
  const token = file('CONSUL_HTTP_TOKEN_FILE')?.toString('utf8').trim() || env.CONSUL_HTTP_TOKEN || undefined;
  const base = `${url.protocol}//${url.host}`;
  // `baseUrl` is an option the client's type does not declare.
  const client = new Consul({ baseUrl: requestBaseUrl(url), agent, defaults: token ? { token } : undefined } as never);
  return { client, url: base, token, close: () => agent.destroy() };
}

/** A one-line reason for a failed Consul call: unreachable, refused token, TLS trouble, or Consul's own message. */
export function describeConsulError(err: unknown, consul: Pick<ConsulConnection, 'url' | 'token'>): string {
  const { url } = consul;
  const e = err as Error & { code?: string; statusCode?: number };
  const status = consulStatus(err);
  const text = e?.message?.replace(/^consul: /, '') ?? String(err);
  // Without a token the agent's anonymous one was refused: "refused the ACL token" would send the reader looking for one.
  if (status === 403 && consul.token === undefined) {
    return `Consul at ${url} refused a request sent without an ACL token (403: ${text}); set CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE to a token with the needed policy`;
  }
  if (status === 403) return `Consul at ${url} refused the ACL token (403: ${text}); set CONSUL_HTTP_TOKEN (or CONSUL_HTTP_TOKEN_FILE) to a token with the needed policy`;
  if (status === 401) return `Consul at ${url} wants credentials (401: ${text})`;
  // The agent's cap on concurrent connections per client address; a blocking query parks one for its whole wait.
  if (status === 429) {
    return `Consul at ${url} refuses more connections from this address (429: ${text}): every watched service holds one (a sidecar: one per destination it watches, which in control-plane mode is one its app has called, plus one for its registration; the control plane: at most 6 for its catalog, one for its KV store); raise the agent's limits { http_max_conns_per_client } (default 200) above what the sidecars on its host and the control plane hold together`;
  }
  if (status !== undefined) return `Consul at ${url} answered ${status}: ${text}`;
  const code = e?.code ?? /\b(E[A-Z]+)\b/.exec(text)?.[1];
  if (code === 'ECONNREFUSED') return `cannot reach Consul at ${url}: connection refused (is the agent running? check --consul / CONSUL_HTTP_ADDR)`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `cannot reach Consul at ${url}: unknown host`;
  if (code && /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code)) return `TLS to Consul at ${url} failed (${code}); check CONSUL_CACERT, CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY`;
  return `Consul at ${url}: ${text}`;
}

/** True when `url` names this host (127.0.0.0/8, ::1, localhost): an agent there can reach loopback ports. */
export function isLoopbackUrl(url: string): boolean {
  return isLoopbackHost(new URL(url).hostname.replace(/^\[|\]$/g, ''));
}
