/**
 * Failover (`services.<name>.failover`), end to end: a real `web` sidecar (static config) whose
 * catalog split sends everything to a subset with no healthy endpoint, its requests answered by
 * the failover target's app, counted, and back on the subset once its endpoint is.
 */
import * as grpc from '@grpc/grpc-js';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { SnapshotInput } from '../../common/config/schema.js';
import { echoHandler, freePort, Processes, startUpstream, tempDir, waitUntil, type Handler, type TestUpstream } from '../support/index.js';
import { echoDefinition, grpcCall, startH2cGrpcPair } from './grpc-fixture.js';
import { metric, scrape, startOutbound } from './resilience-fixture.js';

const procs = new Processes();
const closers: (() => Promise<void>)[] = [];

afterEach(async () => {
  await procs.killAll();
  await Promise.all(closers.splice(0).map((close) => close()));
});

async function app(name: string, handler: Handler = echoHandler(name)): Promise<TestUpstream> {
  const u = await startUpstream(handler);
  closers.push(() => u.close());
  return u;
}

/** An echo app on a given port (one a snapshot already names). */
async function appOn(port: number, name: string): Promise<void> {
  const server: Server = createServer(echoHandler(name));
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
  closers.push(
    () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
}

const at = (port: number, version: string) => ({ address: '127.0.0.1', port, labels: { version } });
const answeredBy = (body: string): string => (JSON.parse(body) as { name: string }).name;

describe('failover', () => {
  it("sends a subset's requests to its target while its only endpoint is down and ejected, and back to it once it answers", async () => {
    const v1 = await app('catalog-v1');
    const v2Port = await freePort(); // nothing listens: connections are refused
    const snapshot: SnapshotInput = {
      version: '1',
      services: {
        catalog: {
          outlierDetection: { consecutiveErrors: 1, baseEjectionTime: '1s', maxEjectionPercent: 100 },
          retries: { attempts: 2, backoff: { base: '1ms', max: '5ms' } },
          failover: { v2: [{ subset: 'v1' }] },
          endpoints: [at(v1.port, 'v1'), at(v2Port, 'v2')],
        },
      },
      routes: { catalog: [{ split: { v2: 100 } }] },
    };
    const web = await startOutbound(procs, snapshot);

    // The first try is refused and ejects v2's endpoint; the retry finds v2 without a healthy one and goes to v1.
    for (let i = 0; i < 5; i++) {
      const r = await web.call(`/items/${i}`);
      expect(r.status, r.body).toBe(200);
      expect(answeredBy(r.body)).toBe('catalog-v1');
    }
    const s = await scrape(web.sidecar);
    expect(metric(s, 'skein_failover_total', { destination: 'catalog', subset: 'v2', target: 'catalog/v1' })).toBe(5);
    // Counted where they went.
    expect(metric(s, 'skein_requests_total', { destination: 'catalog', destination_subset: 'v1', code: '200' })).toBe(5);

    await appOn(v2Port, 'catalog-v2');
    await waitUntil(async () => answeredBy((await web.call('/items/back')).body) === 'catalog-v2', { timeoutMs: 15_000, what: 'v2 answering again' });
    for (let i = 0; i < 3; i++) expect(answeredBy((await web.call(`/items/v2-${i}`)).body)).toBe('catalog-v2');
  });

  it('with no target healthy either, panics to the subset\'s own ejected endpoint, as without a list', async () => {
    const failing = (name: string) => app(name, (_req, res) => res.writeHead(503, { 'x-upstream': name }).end());
    const [v1, v2] = await Promise.all([failing('catalog-v1'), failing('catalog-v2')]);
    const web = await startOutbound(procs, {
      version: '1',
      services: {
        catalog: {
          outlierDetection: { consecutiveErrors: 1, baseEjectionTime: '1m', maxEjectionPercent: 100 },
          retries: { attempts: 0 },
          failover: { v2: [{ subset: 'v1' }] },
          endpoints: [at(v1.port, 'v1'), at(v2.port, 'v2')],
        },
      },
      routes: { catalog: [{ split: { v2: 100 } }] },
    });
    // v2's endpoint fails and is ejected; the next request fails over to v1, which fails and is ejected too.
    for (const upstream of ['catalog-v2', 'catalog-v1', 'catalog-v2']) expect((await web.call('/items')).headers['x-upstream']).toBe(upstream);
    expect([v2.requests.length, v1.requests.length]).toEqual([2, 1]);
    expect(metric(await scrape(web.sidecar), 'skein_failover_total', { destination: 'catalog', subset: 'v2' })).toBe(1);
  });

  it("sends a subset with no endpoint at all to another service's subset, and answers 503 no-healthy-endpoints where no list applies", async () => {
    const v1 = await app('catalog-v1');
    const dr = await app('catalog-dr-v1');
    const snapshot: SnapshotInput = {
      version: '1',
      services: {
        catalog: {
          // Neither v3 nor v4 has an endpoint: the list goes on to catalog-dr.
          subsets: { v3: { version: 'v3' }, v4: { version: 'v4' } },
          failover: { v3: [{ subset: 'v4' }, { service: 'catalog-dr', subset: 'v1' }] },
          endpoints: [at(v1.port, 'v1')],
        },
        'catalog-dr': { endpoints: [at(dr.port, 'v1')] },
        orders: { subsets: { v3: { version: 'v3' } }, endpoints: [at(v1.port, 'v1')] },
      },
      routes: { catalog: [{ split: { v3: 100 } }], orders: [{ split: { v3: 100 } }] },
    };
    const accessLog = join(tempDir(), 'access.log');
    const web = await startOutbound(procs, snapshot, ['--access-log', accessLog]);

    const r = await web.call('/items/1', { headers: { 'x-request-id': 'failed-over-1' } });
    expect(r.status, r.body).toBe(200);
    expect(answeredBy(r.body)).toBe('catalog-dr-v1');
    // Its access log line says where it went, as its metrics do.
    const line = await waitUntil(() => {
      const text = existsSync(accessLog) ? readFileSync(accessLog, 'utf8') : '';
      return text.split('\n').find((l) => l.includes('"failed-over-1"'));
    }, { what: 'the access log line' });
    expect(JSON.parse(line)).toMatchObject({ destination: 'catalog-dr', subset: 'v1', upstream: `127.0.0.1:${dr.port}`, authority: 'catalog', status: 200 });
    const none = await web.call('/orders/1', { service: 'orders' });
    expect(none.status).toBe(503);
    expect(none.headers['x-skein-reason']).toBe('no-healthy-endpoints');

    const clusters = (await (await fetch(`${web.sidecar.adminUrl}/clusters`)).json()) as Record<string, { subsets: Record<string, { failover?: string[] }> }>;
    expect(clusters.catalog!.subsets.v3!.failover).toEqual(['catalog/v4', 'catalog-dr/v1']);
    expect(clusters.orders!.subsets.v3).not.toHaveProperty('failover');

    const s = await scrape(web.sidecar);
    expect(metric(s, 'skein_failover_total', { destination: 'catalog', subset: 'v3', target: 'catalog-dr/v1' })).toBe(1);
    expect(metric(s, 'skein_failover_total', { destination: 'orders' })).toBe(0);
    expect(metric(s, 'skein_requests_total', { destination: 'catalog-dr', destination_subset: 'v1', code: '200' })).toBe(1);
    expect(v1.requests.length).toBe(0);
  });
});

describe('failover of a gRPC service', () => {
  it('sends a call of a subset with no endpoint over the peer sidecar connection of its target', async () => {
    const server = new grpc.Server();
    server.addService(echoDefinition, { Echo: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from('v1')) });
    closers.push(async () => void server.forceShutdown());
    const appPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
    const pair = await startH2cGrpcPair(procs, appPort, { retries: { attempts: 0 }, subsets: { v2: { version: 'v2' } }, failover: { v2: [{ subset: 'v1' }] } }, {}, [{ split: { v2: 100 } }]);
    closers.push(() => pair.webApp.close());

    const call = await grpcCall(pair.web.outboundPort, 'catalog');
    expect(call).toMatchObject({ status: 200, reason: undefined, grpcStatus: '0' });
    expect(metric(await scrape(pair.web), 'skein_failover_total', { destination: 'catalog', subset: 'v2', target: 'catalog/v1' })).toBe(1);
  });
});

