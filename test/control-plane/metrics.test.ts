/**
 * The control plane's `GET /metrics` with a real control-plane process: open without a
 * token, described in openapi.json, and counting what the admin API shows — a real sidecar
 * as SYNCED, a NACK from the sidecar's own push client, bootstrap tokens issued and revoked,
 * and admin responses by method and code. (CSR refusals are checked against the same
 * counts in test/identity/control-plane-issuance.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, parseSnapshot } from '../../common/config/parse.js';
import { echoHandler, Processes, startUpstream, waitUntil, type TestUpstream } from '../support/index.js';
import { startMeshSidecar } from '../identity/mesh.js';
import { metric, scrape } from '../sidecar/resilience-fixture.js';
import { createToken, startControlPlane, testSource, type ControlPlaneProcess } from './harness.js';

const procs = new Processes();
let cp: ControlPlaneProcess;
let app: TestUpstream;

const value = async (name: string, labels: Record<string, string> = {}) => metric(await scrape(cp), name, labels);

beforeAll(async () => {
  cp = await startControlPlane(procs);
  app = await startUpstream(echoHandler('orders'));
  await startMeshSidecar(procs, cp, { service: 'orders', appPort: app.port });
}, 90_000);

afterAll(async () => {
  await procs.killAll();
  await app.close();
});

describe('control plane /metrics', () => {
  it('answers Prometheus text without a token, with the process metrics and every skein series from the first scrape', async () => {
    const res = await fetch(`${cp.adminUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    for (const series of [
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_seconds',
      'skein_ca_csr_total{outcome="unauthenticated"}',
      'skein_ca_csr_total{outcome="identity-mismatch"}',
      'skein_proxies{state="NACKED"}',
      'skein_snapshot_pushes_total',
      'skein_config_acks_total{result="nack"}',
      'skein_bootstrap_tokens_total{action="revoked"}',
      'skein_admin_requests_total{method="GET",code="200"}',
    ]) {
      expect(text.split('\n').some((l) => l.startsWith(`${series} `)), series).toBe(true);
    }
  });

  it('is in the OpenAPI description as an open read answering text/plain', async () => {
    const doc = (await cp.api.get<{ paths: Record<string, Record<string, { security?: unknown; responses: Record<string, { content?: Record<string, unknown> }> }>> }>('/api/v1/openapi.json')).body;
    const op = doc.paths['/metrics']?.get;
    expect(op).toBeDefined();
    expect(op!.security).toBeUndefined();
    expect(Object.keys(op!.responses['200']!.content!)[0]).toMatch(/^text\/plain/);
  });

  it('counts a real sidecar as SYNCED, with the snapshots pushed to it and its ACKs', async () => {
    await waitUntil(async () => (await value('skein_proxies', { state: 'SYNCED' })) === 1, { what: 'the orders sidecar SYNCED in skein_proxies' });
    const s = await scrape(cp);
    expect(metric(s, 'skein_proxies', { state: 'STALE' })).toBe(0);
    expect(metric(s, 'skein_proxies', { state: 'NACKED' })).toBe(0);
    expect(metric(s, 'skein_snapshot_pushes_total')).toBeGreaterThanOrEqual(1);
    expect(metric(s, 'skein_config_acks_total', { result: 'ack' })).toBeGreaterThanOrEqual(1);
    const listed = (await cp.api.get<{ proxies: { service: string; state: string }[] }>('/api/v1/proxies')).body.proxies;
    expect(listed).toEqual([expect.objectContaining({ service: 'orders', state: 'SYNCED' })]);
  });

  it('shows a NACK: the refusing proxy as NACKED and each refusal in skein_config_acks_total{result="nack"}', async () => {
    let refusals = 0;
    const source = testSource(cp, { service: 'reviews', instanceId: 'reviews-metrics', token: await createToken(cp, 'reviews'), inboundPort: 31_777 });
    try {
      void source.start((raw) => {
        if (parseSnapshot(raw).services.reviews?.timeout === 7_000) {
          refusals++;
          throw new ConfigError(['services.reviews.timeout: 7s is not allowed here']);
        }
      });
      await waitUntil(async () => (await value('skein_proxies', { state: 'SYNCED' })) === 2, { what: 'reviews SYNCED beside orders' });
      const before = await scrape(cp);
      await cp.api.put('/api/v1/services/reviews/policy', { timeout: '7s' });
      await waitUntil(async () => (await value('skein_proxies', { state: 'NACKED' })) === 1, { what: 'reviews NACKED in skein_proxies' });
      // The real sidecar took the same snapshot: it stays SYNCED once it has ACKed it.
      await waitUntil(async () => (await value('skein_proxies', { state: 'SYNCED' })) === 1, { what: 'orders SYNCED on the new snapshot' });
      const after = await scrape(cp);
      expect(refusals).toBeGreaterThanOrEqual(1);
      expect(metric(after, 'skein_config_acks_total', { result: 'nack' }) - metric(before, 'skein_config_acks_total', { result: 'nack' })).toBe(refusals);
      expect(metric(after, 'skein_snapshot_pushes_total') - metric(before, 'skein_snapshot_pushes_total')).toBeGreaterThanOrEqual(2);
    } finally {
      await source.close();
    }
    await waitUntil(async () => (await value('skein_proxies', { state: 'NACKED' })) === 0, { what: 'the NACKED proxy gone once its stream closed' });
  });

  it('counts bootstrap tokens issued and revoked, a repeated revocation (204 again) once', async () => {
    const before = await scrape(cp);
    const token = await createToken(cp, 'payments');
    for (let i = 0; i < 2; i++) {
      const revoked = await cp.api.post('/api/v1/tokens/revoke', { token });
      expect({ status: revoked.status, body: revoked.body }).toEqual({ status: 204, body: undefined });
    }
    await expect(cp.api.post('/api/v1/tokens/revoke', { token: 'skt_never-issued' })).rejects.toThrow(/no such bootstrap token/);
    const after = await scrape(cp);
    const delta = (action: string) => metric(after, 'skein_bootstrap_tokens_total', { action }) - metric(before, 'skein_bootstrap_tokens_total', { action });
    expect(delta('issued')).toBe(1);
    expect(delta('revoked')).toBe(1);
  });

  it('counts admin responses by method and code, unknown verbs as method="other"', async () => {
    const before = await scrape(cp);
    const unauthorised = await fetch(`${cp.adminUrl}/api/v1/tokens`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"service":"x"}' });
    expect(unauthorised.status).toBe(401);
    const odd = await fetch(`${cp.adminUrl}/api/v1/proxies`, { method: 'PROPFIND' });
    expect(odd.status).toBe(405);
    const after = await scrape(cp);
    const delta = (labels: Record<string, string>) => metric(after, 'skein_admin_requests_total', labels) - metric(before, 'skein_admin_requests_total', labels);
    expect(delta({ method: 'POST', code: '401' })).toBe(1);
    expect(delta({ method: 'other', code: '405' })).toBe(1);
    // The scrape that took `before` finished before `after` was taken, so it is counted too.
    expect(delta({ method: 'GET', code: '200' })).toBe(1);
  });
});
