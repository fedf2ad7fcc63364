/** A finished request as telemetry reads it (sidecar/telemetry), for unit tests of the spans, the tap and the access log. */
import type { LoggedHop } from '../../sidecar/telemetry/access-log.js';
import type { SidecarMetrics } from '../../sidecar/telemetry/metrics.js';

export function testHop(metrics: SidecarMetrics, over: Partial<LoggedHop> = {}): LoggedHop {
  return {
    startedAt: 100, method: 'GET', url: '/items?secret=1', authority: 'catalog', destination: 'catalog',
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', parentSpanId: '', sampled: true,
    edge: metrics.edge('outbound', 'web', 'catalog', 'v1'), attempts: 1, callerAttempt: undefined, retries: null, reason: undefined, deps: { direction: 'outbound' },
    requestId: 'req-1', subset: { service: 'catalog' }, route: { name: 'rule-0' }, lastEndpoint: { key: '127.0.0.1:9001' }, grpc: false, grpcWebType: undefined, upgrade: '',
    contentLength: -1, responseBytes: 12, reasonDetail: undefined, req: { rawHeaders: ['Host', 'catalog', 'User-Agent', 'curl/8.5.0'] },
    ...over,
  };
}
