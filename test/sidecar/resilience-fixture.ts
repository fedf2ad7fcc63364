/**
 * Shared by the resilience, fault, mirror and metrics end-to-end tests: one plain HTTP
 * client call through a sidecar, a Prometheus scrape parsed into numbers, and an outbound
 * sidecar for a `web` app whose snapshot names test upstreams directly as endpoints.
 */
import { request, type IncomingHttpHeaders } from 'node:http';
import type { SnapshotInput } from '../../common/config/schema.js';
import { echoHandler, startUpstream, writeTempConfig, type Processes, type SpawnedSidecar, type TestUpstream } from '../support/index.js';

export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly ms: number;
}

/** One request on a fresh connection (no pooling between test requests). */
export function send(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), ms: performance.now() - started }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

export type Scrape = Map<string, number>;

/** Parses `/metrics` (a sidecar's admin port, or the control plane's) into `name{a="x",b="y"}` → value, label pairs sorted by name. */
export async function scrape(target: { readonly adminUrl: string }): Promise<Scrape> {
  const res = await fetch(`${target.adminUrl}/metrics`);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}: ${text}`);
  const out: Scrape = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels = (match[2] ?? '').split(/,(?=[a-z_]+=")/).filter(Boolean).sort().join(',');
    out.set(labels ? `${match[1]}{${labels}}` : match[1]!, Number(match[3]));
  }
  return out;
}

/** Sum of the series of `name` whose labels include all of `labels`. */
export function metric(s: Scrape, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let sum = 0;
  for (const [key, value] of s) {
    const brace = key.indexOf('{');
    const metricName = brace < 0 ? key : key.slice(0, brace);
    if (metricName !== name) continue;
    const pairs = brace < 0 ? [] : key.slice(brace + 1, -1).split(/,(?=[a-z_]+=")/);
    if (wanted.every((w) => pairs.includes(w))) sum += value;
  }
  return sum;
}

export interface Outbound {
  readonly sidecar: SpawnedSidecar;
  readonly app: TestUpstream;
  /** The config file the sidecar watches: rewrite it (writeConfigFile) to reload. */
  readonly config: string;
  /** A request from the `web` app to `service` through its outbound listener. */
  call(path: string, options?: { method?: string; headers?: Record<string, string>; body?: string; service?: string }): Promise<Reply>;
}

/** A static endpoint entry for a test upstream. */
export function endpointOf(upstream: TestUpstream, version = 'v1'): { address: string; port: number; labels: Record<string, string> } {
  return { address: '127.0.0.1', port: upstream.port, labels: { version } };
}

/** The `web` sidecar (static config, no identity: plain HTTP to the endpoints), its app answering /health. */
export async function startOutbound(procs: Processes, snapshot: SnapshotInput, extraArgs: readonly string[] = []): Promise<Outbound> {
  const app = await startUpstream(echoHandler('web'));
  const config = writeTempConfig(snapshot);
  const sidecar = await procs.sidecar({ service: 'web', appPort: app.port, config, extraArgs });
  return {
    sidecar,
    app,
    config,
    call: (path, options = {}) =>
      send(`${sidecar.outboundUrl}${path}`, {
        method: options.method,
        body: options.body,
        headers: { host: options.service ?? 'catalog', ...options.headers },
      }),
  };
}
