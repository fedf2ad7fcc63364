/**
 * The outbound request path's fault stage with a real Mesh and stand-ins for the caller's
 * request and response: a fault delay's timer belongs to the exchange, so a caller that
 * leaves during the delay takes it down with the exchange.
 */
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import type { Dispatcher } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseSnapshot } from '../common/config/parse.js';
import { Mesh } from './cluster/mesh.js';
import { EndpointPools } from './cluster/upstream-endpoint.js';
import { StaticEndpointSource } from './discovery/static.js';
import type { ExchangeDeps, ProxyRequest, ProxyResponse } from './exchange.js';
import { handleOutbound, type OutboundContext } from './pipeline.js';
import { SidecarMetrics } from './telemetry/metrics.js';
import { IdSource } from './telemetry/trace-context.js';

afterEach(() => {
  vi.useRealTimers();
});

/** An outbound context whose only service, catalog, delays every request by an hour. */
function delayingContext(): { ctx: OutboundContext; metrics: SidecarMetrics; dispatched: string[] } {
  const dispatched: string[] = [];
  const pools = new EndpointPools((_service, address, port) => ({ close: async () => {}, dispatch: () => (dispatched.push(`${address}:${port}`), true) }) as unknown as Dispatcher);
  const metrics = new SidecarMetrics({ processMetrics: false });
  const endpoints = new StaticEndpointSource();
  const mesh = new Mesh({ self: 'web', endpointSource: endpoints, pools, metrics, logger: pino({ level: 'silent' }) });
  const snapshot = parseSnapshot({
    version: '1',
    services: { catalog: { endpoints: [{ address: '127.0.0.1', port: 9001, labels: { version: 'v1' } }] } },
    routes: { catalog: [{ match: { pathPrefix: '/' }, fault: { delay: { percent: 100, duration: '1h' } } }] },
  });
  endpoints.update(snapshot);
  mesh.install(snapshot);
  const deps = { direction: 'outbound', peerIsSidecar: false, ids: new IdSource(), lifecycle: { draining: false, requestStarted() {}, requestEnded() {} }, metrics, random: () => 0.5, recorder: null, maxBodyBytes: 0 } as unknown as ExchangeDeps;
  return { ctx: { deps, mesh, fixedService: 'catalog', services: undefined as never, connect: undefined as never }, metrics, dispatched };
}

function standIns(): { req: ProxyRequest; res: ProxyResponse } {
  const req = Object.assign(new Readable({ read() {} }), { exchange: null, method: 'GET', url: '/items', httpVersionMajor: 1, rawHeaders: ['host', 'catalog'], headers: { host: 'catalog' } }) as unknown as ProxyRequest;
  const res = Object.assign(new EventEmitter(), { exchange: null, headersSent: false, shouldKeepAlive: true }) as unknown as ProxyResponse;
  return { req, res };
}

describe('a fault delay', () => {
  it('ends with its exchange when the caller leaves during it, holding nothing until the hour is over', async () => {
    vi.useFakeTimers();
    const { ctx, metrics, dispatched } = delayingContext();
    const before = vi.getTimerCount();
    const { req, res } = standIns();
    handleOutbound(ctx, req, res);
    expect(vi.getTimerCount()).toBe(before + 1);
    // The caller hangs up: its response closes.
    res.emit('close');
    expect(vi.getTimerCount()).toBe(before);
    expect(await metrics.registry.getSingleMetricAsString('skein_requests_total')).toContain('code="499"');
    vi.advanceTimersByTime(3_600_000);
    expect(dispatched).toEqual([]);
  });

  it('lets a request that waits it out go on to its endpoint', () => {
    vi.useFakeTimers();
    const { ctx, dispatched } = delayingContext();
    const before = vi.getTimerCount();
    const { req, res } = standIns();
    handleOutbound(ctx, req, res);
    vi.advanceTimersByTime(3_600_000);
    expect(dispatched).toEqual(['127.0.0.1:9001']);
    // What is armed now is the request's own deadline (the service's 3 s timeout), not the spent delay.
    expect(req.exchange!.timer).toBeDefined();
    res.emit('close');
    expect(vi.getTimerCount()).toBe(before);
  });
});
