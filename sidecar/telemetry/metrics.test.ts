import { describe, expect, it } from 'vitest';
import { SidecarMetrics } from './metrics.js';

/** Parses the exposition into `name{a="x",b="y"}` → value, labels sorted by name. */
async function scrape(m: SidecarMetrics): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await m.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`bad line ${line}`);
    const labels = (match[2] ?? '')
      .split(/,(?=[a-z_]+=")/)
      .filter(Boolean)
      .sort()
      .join(',');
    out.set(labels ? `${match[1]}{${labels}}` : match[1]!, Number(match[3]));
  }
  return out;
}

describe('SidecarMetrics', () => {
  it('counts requests per edge and code with the SPEC labels', async () => {
    const m = new SidecarMetrics({ processMetrics: false });
    const edge = m.edge('outbound', 'web', 'catalog', 'v1');
    expect(m.edge('outbound', 'web', 'catalog', 'v1')).toBe(edge);
    for (let i = 0; i < 7; i++) edge.observe(200, 0.003);
    edge.observe(503, 0.2);
    m.edge('inbound', 'web', 'catalog', 'v1').observe(404, 0.0005);
    const s = await scrape(m);
    expect(s.get('skein_requests_total{code="200",destination="catalog",destination_subset="v1",direction="outbound",grpc_status="",source="web"}')).toBe(7);
    expect(s.get('skein_requests_total{code="503",destination="catalog",destination_subset="v1",direction="outbound",grpc_status="",source="web"}')).toBe(1);
    expect(s.get('skein_requests_total{code="404",destination="catalog",destination_subset="v1",direction="inbound",grpc_status="",source="web"}')).toBe(1);
    expect([...s.keys()].filter((k) => k.startsWith('skein_requests_total')).length).toBe(3);
  });

  it('builds a cumulative duration histogram per status class', async () => {
    const m = new SidecarMetrics({ processMetrics: false });
    const edge = m.edge('outbound', 'web', 'catalog', 'v2');
    edge.observe(200, 0.0008);
    edge.observe(201, 0.003);
    edge.observe(200, 0.003);
    edge.observe(200, 42); // beyond the last bound
    edge.observe(500, 0.3);
    const s = await scrape(m);
    const key = (cls: string, le?: string) =>
      `skein_request_duration_seconds${le === undefined ? '_count' : '_bucket'}{class="${cls}",destination="catalog",destination_subset="v2",direction="outbound",${le === undefined ? '' : `le="${le}",`}source="web"}`;
    expect(s.get(key('2xx', '0.001'))).toBe(1);
    expect(s.get(key('2xx', '0.0025'))).toBe(1);
    expect(s.get(key('2xx', '0.005'))).toBe(3);
    expect(s.get(key('2xx', '10'))).toBe(3);
    expect(s.get(key('2xx', '+Inf'))).toBe(4);
    expect(s.get(key('2xx'))).toBe(4);
    expect(s.get(key('5xx', '0.25'))).toBe(0);
    expect(s.get(key('5xx', '0.5'))).toBe(1);
    expect(s.get(key('2xx').replace('_count', '_sum'))).toBeCloseTo(42.0068, 6);
    expect(s.has(key('4xx'))).toBe(false);
  });

  it('labels gRPC requests with their grpc-status', async () => {
    const m = new SidecarMetrics({ processMetrics: false });
    const edge = m.edge('inbound', 'gateway', 'catalog', 'v1');
    edge.observe(200, 0.01, 0);
    edge.observe(200, 0.01, 0);
    edge.observe(200, 0.01, 14);
    const s = await scrape(m);
    expect(s.get('skein_requests_total{code="200",destination="catalog",destination_subset="v1",direction="inbound",grpc_status="0",source="gateway"}')).toBe(2);
    expect(s.get('skein_requests_total{code="200",destination="catalog",destination_subset="v1",direction="inbound",grpc_status="14",source="gateway"}')).toBe(1);
  });

  it('counts a grpc-status outside 0–16 as UNKNOWN (2) under its own HTTP code, never as another code or status', async () => {
    const m = new SidecarMetrics({ processMetrics: false });
    const edge = m.edge('outbound', 'web', 'catalog', 'v1');
    // Once keyed status * 32 + grpc-status: 32 read back as code 201 with status 0, 40 as 201/8, 99 as 203/3.
    for (const grpcStatus of [32, 40, 99, NaN, 17, 16]) edge.observe(200, 0.01, grpcStatus);
    edge.observe(503, 0.01, 99);
    const s = await scrape(m);
    const series = [...s.keys()].filter((k) => k.startsWith('skein_requests_total'));
    const label = (code: number, grpc: number) => `skein_requests_total{code="${code}",destination="catalog",destination_subset="v1",direction="outbound",grpc_status="${grpc}",source="web"}`;
    expect(series.sort()).toEqual([label(200, 16), label(200, 2), label(503, 2)].sort());
    expect(s.get(label(200, 2))).toBe(5);
    // The 503's failure is counted by its class already (grpcFailures feeds the stats, which add both).
    expect(edge.grpcFailures()).toBe(6);
  });

  it('exposes every SPEC §7 series with its labels, plus process metrics', async () => {
    const m = new SidecarMetrics();
    m.retry('catalog', 'gateway-error');
    m.retry('catalog', 'gateway-error');
    m.retryBudgetExhausted('catalog');
    m.setCircuitState('catalog', 'v1', 'half-open');
    m.circuitRejected('catalog', 'v1');
    m.outlierEjected('catalog');
    m.setEndpoints('catalog', 'v1', 'healthy', 3);
    m.authzDeniedRequest('web', 'orders');
    m.tlsHandshakeFailed('bad-certificate');
    m.configUpdate('ack');
    m.configUpdate('nack');
    m.setCertExpiry(1_800_000_000);
    const s = await scrape(m);
    expect(s.get('skein_retries_total{destination="catalog",reason="gateway-error"}')).toBe(2);
    expect(s.get('skein_retry_budget_exhausted_total{destination="catalog"}')).toBe(1);
    expect(s.get('skein_circuit_state{destination="catalog",subset="v1"}')).toBe(2);
    expect(s.get('skein_circuit_rejections_total{destination="catalog",subset="v1"}')).toBe(1);
    expect(s.get('skein_outlier_ejections_total{destination="catalog"}')).toBe(1);
    expect(s.get('skein_endpoints{destination="catalog",state="healthy",subset="v1"}')).toBe(3);
    expect(s.get('skein_authz_denied_total{destination="orders",source="web"}')).toBe(1);
    expect(s.get('skein_tls_handshake_failures_total{reason="bad-certificate"}')).toBe(1);
    expect(s.get('skein_config_updates_total{result="ack"}')).toBe(1);
    expect(s.get('skein_config_updates_total{result="nack"}')).toBe(1);
    expect(s.get('skein_cert_expiry_timestamp_seconds')).toBe(1_800_000_000);
    expect(s.get('process_cpu_user_seconds_total')).toBeGreaterThanOrEqual(0);
    expect(s.has('nodejs_eventloop_lag_seconds')).toBe(true);
  });

  it('exports no certificate expiry before there is a certificate (0 would read as expired at the epoch)', async () => {
    const m = new SidecarMetrics({ processMetrics: false });
    expect((await scrape(m)).has('skein_cert_expiry_timestamp_seconds')).toBe(false);
    expect(await m.text()).toContain('# TYPE skein_cert_expiry_timestamp_seconds gauge');
    m.setCertExpiry(1_800_000_000);
    expect((await scrape(m)).get('skein_cert_expiry_timestamp_seconds')).toBe(1_800_000_000);
  });

  it('keeps registries apart', async () => {
    const a = new SidecarMetrics({ processMetrics: false });
    const b = new SidecarMetrics({ processMetrics: false });
    a.edge('outbound', 'x', 'y', 'v1').observe(200, 0.001);
    expect((await b.text()).includes('destination="y"')).toBe(false);
  });
});
