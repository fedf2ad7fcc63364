/**
 * A small mesh for observability tests, all real processes: a control plane and sidecars
 * in control-plane mode for `web` (the entry: tests call its outbound listener),
 * `frontend` (its app calls `backend` through its own sidecar, forwarding the trace
 * headers) and `backend` v1 and v2 (their apps answer `?status=N` and `?delay=MS`).
 *
 *   test → web sidecar (outbound) → frontend sidecar → frontend app → frontend sidecar (outbound) → backend sidecar → backend app
 */
import { type IncomingMessage, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { request } from 'undici';
import { startMeshSidecar, type MeshSidecar } from '../identity/mesh.js';
import { startControlPlane, type ControlPlaneProcess } from '../control-plane/harness.js';
import { echoHandler, startUpstream, type Processes, type TestUpstream } from '../support/index.js';

export interface ObservedMesh {
  readonly cp: ControlPlaneProcess;
  readonly web: MeshSidecar;
  readonly frontend: MeshSidecar;
  readonly backendV1: MeshSidecar;
  readonly backendV2: MeshSidecar;
  readonly apps: TestUpstream[];
  close(): Promise<void>;
}

/** Answers after `?delay=MS` with status `?status=N` (default 200), naming itself. */
export function backendHandler(name: string) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://x');
    const status = Number(url.searchParams.get('status') ?? 200);
    const delay = Number(url.searchParams.get('delay') ?? 0);
    setTimeout(() => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ name, status }));
    }, delay);
  };
}

/** The frontend app: calls backend through its sidecar with the same path and query, forwarding traceparent. */
function frontendHandler(outboundUrl: () => string) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    if (req.url === '/health') {
      res.end('ok');
      return;
    }
    const headers: Record<string, string> = { host: 'backend' };
    for (const name of ['traceparent', 'tracestate', 'x-request-id']) {
      const v = req.headers[name];
      if (typeof v === 'string') headers[name] = v;
    }
    request(`${outboundUrl()}${req.url}`, { headers })
      .then(async (r) => {
        const body = await r.body.text();
        res.writeHead(r.statusCode, { 'content-type': 'application/json' });
        res.end(body);
      })
      .catch((err: Error) => {
        res.writeHead(502);
        res.end(err.message);
      });
  };
}

async function app(apps: TestUpstream[], handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<number> {
  const u = await startUpstream(handler);
  apps.push(u);
  return u.port;
}

export async function startObservedMesh(procs: Processes, options: { cpArgs?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<ObservedMesh> {
  const cp = await startControlPlane(procs, { args: options.cpArgs });
  const apps: TestUpstream[] = [];
  let frontendOutbound = '';
  const [web, frontend, backendV1, backendV2] = await Promise.all([
    app(apps, echoHandler('web')).then((port) => startMeshSidecar(procs, cp, { service: 'web', appPort: port, env: options.env })),
    app(apps, frontendHandler(() => frontendOutbound)).then((port) => startMeshSidecar(procs, cp, { service: 'frontend', appPort: port, env: options.env })),
    app(apps, backendHandler('backend-v1')).then((port) => startMeshSidecar(procs, cp, { service: 'backend', version: 'v1', appPort: port, env: options.env })),
    app(apps, backendHandler('backend-v2')).then((port) => startMeshSidecar(procs, cp, { service: 'backend', version: 'v2', appPort: port, env: options.env })),
  ]);
  frontendOutbound = frontend.outboundUrl;
  return {
    cp,
    web,
    frontend,
    backendV1,
    backendV2,
    apps,
    async close() {
      await Promise.all(apps.map((a) => a.close()));
    },
  };
}

/** One request from the web sidecar's outbound listener to `host`. */
export async function call(mesh: ObservedMesh, host: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const res = await request(`${mesh.web.outboundUrl}${path}`, { headers: { host, ...headers } });
  return { status: res.statusCode, body: await res.body.text() };
}

/** Sends `n` requests, `concurrency` at a time; each one's status and latency (ms) as the client saw it. */
export async function burst(mesh: ObservedMesh, host: string, path: string, n: number, concurrency = 8): Promise<{ status: number; ms: number }[]> {
  const results: { status: number; ms: number }[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++;
        const started = performance.now();
        const { status } = await call(mesh, host, path);
        results.push({ status, ms: performance.now() - started });
      }
    }),
  );
  return results;
}
