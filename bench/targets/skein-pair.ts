/**
 * (C) the Skein pair: two `skein sidecar` processes in static mode. The client side's
 * outbound listener routes `Host: bench-upstream` over mTLS to the server side's inbound
 * listener, which forwards to the upstream. The snapshot turns on every stage a request can
 * pass through: a header-matched rule and a weighted split (two subsets, both served by the
 * one server-side sidecar), retries with a budget, a circuit breaker, outlier detection and
 * intentions; metrics and trace propagation are always on.
 *
 * Endpoints are keyed by address and port, so the two subsets reach the one server-side
 * sidecar at two loopback addresses (127.0.0.1 for v1, 127.0.0.2 for v2); that sidecar's
 * inbound listener binds 0.0.0.0 to answer on both (mTLS with the bench CA still required).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import type { SnapshotInput } from '../../common/config/schema.js';
import type { ChildProcesses, Child } from '../lib/children.js';
import type { BenchIdentities, LeafFiles } from '../lib/identities.js';
import { sumBy } from '../lib/prom-text.js';
import type { Target } from './target.js';

/**
 * `full`: every stage on (the benchmark's (C)). `minimal`: what cannot be turned off (mTLS,
 * metrics, tracing, breaker and outlier bookkeeping) and nothing else: one endpoint, no
 * route rules, no intentions, no retries; to see what the optional stages cost.
 */
export type SkeinFeatures = 'full' | 'minimal';

export function skeinSnapshot(identities: BenchIdentities, serverInboundPort: number, features: SkeinFeatures = 'full', protocol: 'http' | 'grpc' = 'http'): SnapshotInput {
  const service = identities.server.service;
  const endpoint = (address: string, version: string) => ({ address, port: serverInboundPort, labels: { version } });
  if (features === 'minimal') {
    return { version: 'bench-minimal', services: { [service]: { protocol, retries: { attempts: 0 }, endpoints: [endpoint('127.0.0.1', 'v1')] } } };
  }
  return {
    version: 'bench-1',
    services: {
      [service]: {
        protocol,
        lb: 'least-request',
        timeout: '3s',
        retries: {
          attempts: 2,
          perTryTimeout: '1s',
          on: ['connect-failure', 'reset', 'gateway-error'],
          backoff: { base: '25ms', max: '250ms' },
          budget: { ratio: 0.2, minPerSecond: 10 },
        },
        circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 20, rollingWindow: '10s', resetTimeout: '5s', maxConcurrent: 1024 },
        outlierDetection: { consecutiveErrors: 5, baseEjectionTime: '30s', maxEjectionPercent: 50 },
        subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } },
        endpoints: [endpoint('127.0.0.1', 'v1'), endpoint('127.0.0.2', 'v2')],
      },
    },
    routes: {
      [service]: [
        { match: { pathPrefix: '/', headers: { 'x-canary': 'true' } }, split: { v2: 100 } },
        { match: { pathPrefix: '/' }, split: { v1: 90, v2: 10 } },
      ],
    },
    intentions: {
      defaultAction: 'deny',
      rules: [{ source: identities.client.service, destination: service, action: 'allow' }],
    },
  };
}

export interface SkeinPairOptions {
  readonly skeinBin: string;
  readonly dir: string;
  readonly upstreamPort: number;
  /** Six free ports: inbound, outbound and admin of the client side, then of the server side. */
  readonly ports: readonly number[];
  readonly identities: BenchIdentities;
  readonly features?: SkeinFeatures;
  /** `grpc`: the service is declared `protocol: grpc` and the server side's app speaks h2c gRPC. */
  readonly protocol?: 'http' | 'grpc';
  /** When set, each sidecar writes a V8 CPU profile there on exit (`skein-<service>.cpuprofile`). */
  readonly profileDir?: string;
}

interface SidecarPorts {
  readonly inbound: number;
  readonly outbound: number;
  readonly admin: number;
}

function startSidecar(children: ChildProcesses, o: SkeinPairOptions, leaf: LeafFiles, config: string, ports: SidecarPorts, inboundHost: string): Child {
  const profile = o.profileDir ? ['--cpu-prof', '--cpu-prof-dir', o.profileDir, '--cpu-prof-name', `skein-${leaf.service}.cpuprofile`] : [];
  const args = [
    ...profile,
    o.skeinBin, 'sidecar',
    '--service', leaf.service,
    '--version', 'v1',
    // The client side has no app of its own; its health check may as well ask the upstream.
    '--app-port', String(o.upstreamPort),
    '--config', config,
    '--inbound-host', inboundHost,
    '--inbound-port', String(ports.inbound),
    '--outbound-port', String(ports.outbound),
    '--admin-port', String(ports.admin),
    '--advertise-address', '127.0.0.1',
    '--drain-timeout', '1s',
    '--cert-file', leaf.certFile,
    '--key-file', leaf.keyFile,
    '--ca-file', o.identities.caFile,
    ...(o.protocol === 'grpc' ? ['--app-protocol', 'grpc'] : []),
  ];
  return children.spawn(`skein sidecar ${leaf.service}`, process.execPath, args, { env: { SKEIN_LOG_LEVEL: 'warn' } });
}

export function startSkeinPair(children: ChildProcesses, o: SkeinPairOptions): Target {
  const [clientIn, clientOut, clientAdmin, serverIn, serverOut, serverAdmin] = o.ports as [number, number, number, number, number, number];
  const config = join(o.dir, 'skein-bench.json');
  const features = o.features ?? 'full';
  writeFileSync(config, JSON.stringify(skeinSnapshot(o.identities, serverIn, features, o.protocol), null, 2));
  const server = startSidecar(children, o, o.identities.server, config, { inbound: serverIn, outbound: serverOut, admin: serverAdmin }, '0.0.0.0');
  const client = startSidecar(children, o, o.identities.client, config, { inbound: clientIn, outbound: clientOut, admin: clientAdmin }, '127.0.0.1');
  return {
    name: 'skein',
    label: features === 'full' ? '(C) Skein pair' : `(C) Skein pair, ${features} config`,
    url: `http://127.0.0.1:${clientOut}/`,
    host: o.identities.server.service,
    proxies: [
      { role: 'outbound', pids: () => [client.pid] },
      { role: 'inbound', pids: () => [server.pid] },
    ],
    children: [client, server],
    notes: [
      features === 'full'
        ? 'mTLS, header route + 90/10 split, retries, breaker, outlier detection, intentions, metrics, tracing'
        : 'mTLS, metrics, tracing; no route rules, split, retries or intentions',
    ],
    observe: () => observeTraffic(clientAdmin, serverAdmin),
  };
}

interface Counts {
  readonly bySubset: Map<string, number>;
  readonly byCode: Map<string, number>;
  readonly inbound: number;
  readonly retries: number;
}

async function readCounts(clientAdmin: number, serverAdmin: number): Promise<Counts> {
  const metrics = async (port: number): Promise<string> => (await request(`http://127.0.0.1:${port}/metrics`)).body.text();
  const [client, server] = await Promise.all([metrics(clientAdmin), metrics(serverAdmin)]);
  const sum = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);
  return {
    bySubset: sumBy(client, 'skein_requests_total', { direction: 'outbound' }, 'destination_subset'),
    byCode: sumBy(client, 'skein_requests_total', { direction: 'outbound' }, 'code'),
    inbound: sum(sumBy(server, 'skein_requests_total', { direction: 'inbound' }, 'direction')),
    retries: sum(sumBy(client, 'skein_retries_total', {}, 'reason')),
  };
}

function minus(after: Map<string, number>, before: Map<string, number>): [string, number][] {
  return [...after].map(([k, n]): [string, number] => [k, n - (before.get(k) ?? 0)]).filter(([, n]) => n > 0).sort();
}

/** What the two sidecars' /metrics say they carried from now on: the split as observed, response codes, retries. */
async function observeTraffic(clientAdmin: number, serverAdmin: number): Promise<() => Promise<string>> {
  const before = await readCounts(clientAdmin, serverAdmin);
  return async () => {
    const after = await readCounts(clientAdmin, serverAdmin);
    const subsets = minus(after.bySubset, before.bySubset);
    const total = subsets.reduce((a, [, n]) => a + n, 0);
    const split = subsets.map(([subset, n]) => `${subset} ${((100 * n) / total).toFixed(1)}%`).join(', ');
    const codes = minus(after.byCode, before.byCode).map(([code, n]) => `${code} ×${n.toLocaleString('en-US')}`).join(', ');
    const inbound = after.inbound - before.inbound;
    // wrk stops with up to one request in flight per connection; the sidecar logs those as 499.
    const note = after.byCode.has('499') ? '; 499 = in flight when wrk stopped' : '';
    return `the sidecars counted ${total.toLocaleString('en-US')} requests out and ${inbound.toLocaleString('en-US')} in (codes ${codes || 'none'}${note}), split ${split || 'none'}, ${after.retries - before.retries} retries`;
  };
}
