/**
 * A retry given up during its backoff because the caller went away is never sent, so it is not
 * counted in skein_retries_total (nor as a span's retry event): the counter says how many
 * retries went to endpoints, as it leaves out one whose backoff would outlast the deadline.
 */
import { connect } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { Processes, startUpstream, waitUntil, type TestUpstream } from '../support/index.js';
import { endpointOf, metric, scrape, startOutbound } from './resilience-fixture.js';

const procs = new Processes();
const apps: TestUpstream[] = [];

afterAll(async () => {
  await procs.killAll();
  await Promise.all(apps.map((a) => a.close()));
});

describe('retries and a caller that leaves', () => {
  it('does not count a retry the caller left before its backoff ended', async () => {
    let hits = 0;
    const app = await startUpstream((req, res) => {
      if (req.url === '/health') return void res.end('ok');
      hits++;
      res.writeHead(503);
      res.end();
    });
    apps.push(app);
    // A backoff of up to 20 s (full jitter): the caller leaves as soon as the first try is answered.
    const out = await startOutbound(procs, {
      version: '1',
      services: { catalog: { timeout: '60s', retries: { attempts: 1, on: ['gateway-error'], backoff: { base: '20s', max: '20s' } }, endpoints: [endpointOf(app)] } },
    });
    apps.push(out.app);
    const socket = connect(out.sidecar.outboundPort, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write('GET /flaky HTTP/1.1\r\nhost: catalog\r\n\r\n');
    await waitUntil(() => hits >= 1, { what: 'the first try to reach the app' });
    socket.destroy();

    const s = await waitUntil(async () => {
      const m = await scrape(out.sidecar);
      return metric(m, 'skein_requests_total', { destination: 'catalog' }) >= 1 ? m : undefined;
    }, { what: 'the request to be counted' });
    // The caller left during the backoff (499), unless the backoff was shorter than its leaving
    // (then the retry went out and its 503 was the answer): either way, a counted retry is a sent one.
    const retries = metric(s, 'skein_retries_total', { destination: 'catalog' });
    expect({ retries, code499: metric(s, 'skein_requests_total', { destination: 'catalog', code: '499' }) }).toEqual(
      hits === 1 ? { retries: 0, code499: 1 } : { retries: 1, code499: metric(s, 'skein_requests_total', { destination: 'catalog', code: '499' }) },
    );
  });
});
