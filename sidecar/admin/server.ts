/**
 * The admin listener on 127.0.0.1:adminPort (SPEC §3): /live, /ready, /metrics, /config,
 * /clusters, POST /drain; and /ready/outbound, which `skein sidecar --wait-ready` polls.
 * Plain node:http: it is off the request path.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { COMPONENT_HEADER, type SkeinComponent } from '../../common/http/component.js';

export interface AdminDeps {
  /** Why /ready is 503 (empty when ready); `outbound`: why /ready/outbound is (see wait-ready.ts). */
  notReady(outbound: boolean): string[];
  metricsText(): Promise<string>;
  readonly metricsContentType: string;
  config(): object;
  clusters(): object;
  /** Starts draining; resolves at once with the in-flight count. */
  drain(): number;
  /** This process's instance id, which `/ready?instance=<id>` (Consul's check) must name. */
  readonly instanceId: string;
}

/**
 * Why `/ready?instance=<id>` is 503 for a check that names another instance, if it does.
 * Consul's HTTP check knows the sidecar by its admin port only: after a crash (SIGKILL) a
 * sidecar restarted on the same port under a new instance id would pass the old
 * registration's check too, and Consul would list that phantom instance for good instead of
 * reaping it.
 */
function otherInstance(url: string, own: string): string | undefined {
  const query = url.indexOf('?');
  const asked = query < 0 ? null : new URLSearchParams(url.slice(query + 1)).get('instance');
  if (asked === null || asked === own) return undefined;
  return `this admin port belongs to instance ${JSON.stringify(own)}, not ${JSON.stringify(asked)}: a check registered by an earlier process on this port, which Consul reaps once it stays critical`;
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  // Says whose answer it is, so the CLI pointed here instead of at the control plane can tell.
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', [COMPONENT_HEADER]: 'sidecar' satisfies SkeinComponent });
  res.end(body);
}

function json(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json', `${JSON.stringify(value, null, 2)}\n`);
}

async function route(deps: AdminDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  const method = req.method ?? 'GET';
  const allow = (m: string): boolean => {
    if (method === m || (m === 'GET' && method === 'HEAD')) return true;
    // Allow lists every method the endpoint takes (RFC 9110 §10.2.1): a GET one answers HEAD too.
    res.setHeader('allow', m === 'GET' ? 'GET, HEAD' : m);
    json(res, 405, { error: { code: 'method-not-allowed', message: `${path} takes ${m}` } });
    return false;
  };
  switch (path) {
    case '/live':
      if (allow('GET')) send(res, 200, 'text/plain; charset=utf-8', 'live\n');
      return;
    case '/ready':
    case '/ready/outbound': {
      if (!allow('GET')) return;
      const other = otherInstance(req.url ?? '', deps.instanceId);
      const blockers = other === undefined ? deps.notReady(path === '/ready/outbound') : [other];
      if (blockers.length === 0) send(res, 200, 'text/plain; charset=utf-8', 'ready\n');
      else send(res, 503, 'text/plain; charset=utf-8', `not ready:\n${blockers.map((b) => `- ${b}\n`).join('')}`);
      return;
    }
    case '/metrics':
      if (allow('GET')) send(res, 200, deps.metricsContentType, await deps.metricsText());
      return;
    case '/config':
      if (allow('GET')) json(res, 200, deps.config());
      return;
    case '/clusters':
      if (allow('GET')) json(res, 200, deps.clusters());
      return;
    case '/drain':
      if (allow('POST')) json(res, 202, { draining: true, inFlight: deps.drain() });
      return;
    default: {
      // The admin API's paths: someone (an older CLI, curl) took this port for the control plane's.
      const api = path?.startsWith('/api/') ? "; this is a Skein sidecar's admin port, and /api/… is the control plane's admin API (its --http-port, default 127.0.0.1:15080)" : '';
      json(res, 404, { error: { code: 'not-found', message: `no admin endpoint ${path}; try /live /ready /ready/outbound /metrics /config /clusters, POST /drain${api}` } });
    }
  }
}

export function createAdminServer(deps: AdminDeps): Server {
  return createServer((req, res) => {
    route(deps, req, res).catch((err: Error) => {
      if (!res.headersSent) json(res, 500, { error: { code: 'internal', message: err.message } });
      else res.destroy();
    });
  });
}
