/**
 * The service graph's layout for meshes the demo does not have: two services that call each
 * other and nothing else (a cycle with no caller outside it). Against a scripted API: the real
 * admin server and dashboard files, the stats from the real aggregator.
 */
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { createLogger } from '../../common/log.js';
import { DURATION_BUCKETS, type EdgeDelta } from '../../common/proto/telemetry.js';
import { Router } from '../../control-plane/admin-api/router.js';
import { createAdminServer } from '../../control-plane/admin-api/server.js';
import { registerDashboardRoutes } from '../../control-plane/dashboard/routes.js';
import { StatsAggregator } from '../../control-plane/observability/stats.js';
import { launchChromium, type Headless } from './browser.js';

let server: Server;
let url = '';
let chrome: Headless;
let page: Page;

function delta(direction: 'inbound' | 'outbound', source: string, destination: string): EdgeDelta {
  const buckets = new Array<number>(DURATION_BUCKETS.length + 1).fill(0);
  buckets[2] = 10;
  return { direction, source, destination, subset: 'v1', classes: [0, 10, 0, 0, 0], grpcFailures: 0, buckets, sumSeconds: 0.04 };
}

beforeAll(async () => {
  let now = Date.now() - 2_000;
  const stats = new StatsAggregator(() => now);
  for (const [from, to] of [['alpha', 'beta'], ['beta', 'alpha']] as const) {
    stats.ingest({ id: from, service: from, instanceId: `${from}-1` }, { bounds: DURATION_BUCKETS, edges: [delta('outbound', from, to), delta('inbound', from, to)], breakers: [] });
  }
  now += 2_000;
  const view = stats.view();
  const api = (path: string, body: unknown) => ({ method: 'GET' as const, path, summary: path, auth: false, handler: async () => ({ body }) });
  const router = new Router().add(api('/api/v1/services', [{ name: 'alpha' }, { name: 'beta' }])).add(api('/api/v1/stats', view));
  registerDashboardRoutes(router);
  server = createAdminServer({ router, adminToken: 'unused', logger: createLogger('scripted-control-plane', 'silent'), maxBodyBytes: 1024 });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  chrome = await launchChromium();
}, 60_000);

afterAll(async () => {
  await page?.close();
  await chrome?.close();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
});

describe('dashboard service graph', () => {
  it('draws two services that call each other, and nothing else, with both nodes placed', async () => {
    page = await chrome.newPage();
    await page.goto(`${url}/#/`);
    await page.locator('#graph [data-service="beta"]').waitFor({ timeout: 10_000 });
    const viewBox = await page.locator('#graph').getAttribute('viewBox');
    expect(viewBox).toMatch(/^0 0 \d+(\.\d+)? \d+(\.\d+)?$/);
    const placed = await page.locator('#graph [data-service]').evaluateAll((nodes) => nodes.map((n) => [n.getAttribute('data-service'), n.getAttribute('transform')]));
    expect(placed.map(([name]) => name).sort()).toEqual(['alpha', 'beta']);
    for (const [, transform] of placed) expect(transform).toMatch(/^translate\(-?\d+(\.\d+)?,-?\d+(\.\d+)?\)$/);
    for (const d of await page.locator('#graph .edge path').evaluateAll((paths) => paths.map((p) => p.getAttribute('d')))) expect(d).not.toContain('NaN');
    await chrome.screenshot(page, 'graph-cycle');
  });
});
