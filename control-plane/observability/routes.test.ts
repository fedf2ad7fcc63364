/**
 * The tap's Server-Sent Events stream against a client that stops reading: the control plane
 * must not queue its rows without bound (one stuck browser tab would grow it by ~40 KB/s per
 * tapped sidecar, forever), but skip them and say how many in a `dropped` event.
 */
import { connect, type Socket } from 'node:net';
import type { Server, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../../test/support/wait.js';
import { createLogger } from '../../common/log.js';
import type { TapRow } from '../../common/proto/telemetry.js';
import { Router } from '../admin-api/router.js';
import { createAdminServer } from '../admin-api/server.js';
import type { ServiceSources } from '../admin-api/services-routes.js';
import { Observability } from './observability.js';
import { registerObservabilityRoutes } from './routes.js';

const logger = createLogger('routes-test', 'silent');
let server: Server;
let obs: Observability;
let port = 0;
let tapResponse: ServerResponse | undefined;

const sources = {
  config: { read: async () => ({ config: { policies: {}, routes: {} }, refused: [] }), location: 'test' },
  discovery: { instances: () => [{ service: 'web', id: 'web-1', address: '127.0.0.1', port: 1, protocol: 'http', labels: { version: 'v1' }, health: 'healthy' }] },
} as unknown as ServiceSources;

beforeAll(async () => {
  obs = new Observability({ send: () => undefined }, logger);
  const router = new Router();
  registerObservabilityRoutes(router, obs, sources);
  server = createAdminServer({ router, adminToken: 'unused', logger, maxBodyBytes: 1024 });
  server.on('request', (req, res) => {
    if (req.url?.startsWith('/api/v1/tap')) tapResponse = res;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});

afterAll(async () => {
  obs.close();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function row(i: number): TapRow {
  return {
    time: Date.now(), direction: 'inbound', source: 'frontend', destination: 'web', subset: 'v1', method: 'GET', authority: 'web',
    path: `/items/${i}/${'x'.repeat(200)}`, status: 200, grpcStatus: -1, latencyMs: 1.5, traceId: '4bf92f3577b34da6a3ce929d0e0e4736', attempts: 1,
  };
}

describe('GET /api/v1/tap', () => {
  it('skips and counts rows for a client that stops reading instead of buffering them without bound', async () => {
    let received = '';
    const socket: Socket = connect(port, '127.0.0.1');
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.write('GET /api/v1/tap?service=web HTTP/1.1\r\nhost: x\r\n\r\n');
    await waitUntil(() => received.includes(': tapping web'), { what: 'the stream to open' });
    socket.pause();

    // ~40 MB of rows while the client reads nothing: far beyond what the kernel's socket buffers hold.
    const batches = 1000;
    const perBatch = 150;
    for (let b = 0; b < batches; b++) {
      obs.tap.ingest({ service: 'web', instanceId: 'web-1' }, { rows: Array.from({ length: perBatch }, (_, i) => row(b * perBatch + i)), dropped: 0 });
      await new Promise((r) => setImmediate(r));
    }
    const queued = tapResponse!.writableLength;
    expect(queued).toBeLessThan(2 << 20);

    // Once the client reads again it gets what was queued, then how many rows were skipped.
    socket.resume();
    const counted = await waitUntil(() => {
      const rows = (received.match(/^data: \{"time"/gm) ?? []).length;
      const dropped = [...received.matchAll(/^event: dropped\ndata: \{"dropped":(\d+)\}/gm)].reduce((n, m) => n + Number(m[1]), 0);
      return rows + dropped === batches * perBatch ? { rows, dropped } : undefined;
    }, { what: 'every row delivered or counted as dropped', timeoutMs: 20_000 });
    expect(counted.dropped).toBeGreaterThan(0);

    // And rows flow again once it keeps up.
    obs.tap.ingest({ service: 'web', instanceId: 'web-1' }, { rows: [row(-1)], dropped: 0 });
    await waitUntil(() => received.includes('"path":"/items/-1/'), { what: 'a row after the client caught up' });
    socket.destroy();
  });
});
