/**
 * The dashboard in real headless Chromium when something goes wrong, against a real control
 * plane: a tap it refuses shows its reason (an EventSource hides it), a tap whose control
 * plane goes away says it retries and taps again once it is back, and the page of a service
 * it does not know says so; against a scripted API, a view's error leaves the header with it
 * and the tap counts all the rows the rate limit skipped.
 */
import type { Server } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { createLogger } from '../../common/log.js';
import { ApiError } from '../../control-plane/admin-api/errors.js';
import { Router } from '../../control-plane/admin-api/router.js';
import { createAdminServer } from '../../control-plane/admin-api/server.js';
import { registerDashboardRoutes } from '../../control-plane/dashboard/routes.js';
import type { TapEvent } from '../../control-plane/observability/tap.js';
import { Processes } from '../support/index.js';
import { startControlPlane, type ControlPlaneProcess } from '../control-plane/harness.js';
import { launchChromium, type Headless } from './browser.js';

const procs = new Processes();
let cp: ControlPlaneProcess;
let scripted: { server: Server; url: string };
let chrome: Headless;
let page: Page;

const ROW: TapEvent = { time: Date.now(), direction: 'inbound', source: 'web', destination: 'backend', subset: 'v1', method: 'GET', authority: 'backend', path: '/x', status: 200, grpcStatus: -1, latencyMs: 1.5, traceId: '', attempts: 1, service: 'backend', instance: 'backend-v1-1' };

/**
 * For what a real control plane does not do on cue (its stats failing, tap rows over the rate
 * limit): the real admin server and dashboard files, with API answers scripted here.
 */
async function startScriptedControlPlane(): Promise<{ server: Server; url: string }> {
  const api = (path: string, handler: Parameters<Router['add']>[0]['handler']) => ({ method: 'GET' as const, path, summary: path, auth: false, handler });
  const router = new Router()
    .add(api('/api/v1/services', async () => ({ body: [{ name: 'backend' }] })))
    .add(api('/api/v1/stats', async () => {
      throw new ApiError('unavailable', 'stats are resting');
    }))
    .add(api('/api/v1/tap', async ({ res }) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`event: dropped\ndata: {"dropped":3}\n\ndata: ${JSON.stringify(ROW)}\n\nevent: dropped\ndata: {"dropped":4}\n\n`);
      return undefined;
    }));
  registerDashboardRoutes(router);
  const server = createAdminServer({ router, adminToken: 'unused', logger: createLogger('scripted-control-plane', 'silent'), maxBodyBytes: 1024 });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}` };
}

beforeAll(async () => {
  [cp, chrome, scripted] = await Promise.all([startControlPlane(procs), launchChromium(), startScriptedControlPlane()]);
  // Known to the control plane by its policy alone: no sidecar needed to open a tap on it.
  await cp.api.put('/api/v1/services/backend/policy', { timeout: '2s' });
}, 60_000);

afterAll(async () => {
  await chrome?.close();
  await procs.killAll();
  scripted?.server.closeAllConnections();
  await new Promise((resolve) => scripted?.server.close(resolve));
});

/** A fresh page per test, so one test's open view or tap does not carry into the next. */
async function open(hash: string, base = cp.adminUrl): Promise<Page> {
  page = await chrome.newPage();
  await page.goto(`${base}/${hash}`);
  return page;
}

afterEach(async () => {
  await page?.close();
});

const tapState = (text: string) => page.locator('#tap-state', { hasText: text });

describe('dashboard tap', () => {
  it("shows the control plane's reason when it refuses a tap, not a retry that never comes", async () => {
    await open('#/tap?service=backend');
    await tapState('tapping backend').waitFor({ timeout: 10_000 });
    await page.fill('input[name="status"]', 'abc');
    await page.click('#tap-start');
    await tapState('not tapping: status must be a class such as 5xx or a status such as 503').waitFor({ timeout: 5_000 });
    await chrome.screenshot(page, 'tap-refused');
  });

  it('says it retries while the control plane is away, and taps again once it is back', async () => {
    await open('#/tap?service=backend');
    await tapState('tapping backend').waitFor({ timeout: 10_000 });
    cp.child.kill('SIGKILL');
    await cp.child.exited;
    await tapState('connection lost; retrying…').waitFor({ timeout: 5_000 });
    cp = await startControlPlane(procs, { dataDir: cp.dataDir, httpPort: cp.httpPort, grpcPort: cp.grpcPort });
    // The browser reconnects by itself (the stream asks for a retry after 2 s).
    await tapState('tapping backend').waitFor({ timeout: 15_000 });
  });
});

describe('dashboard tap over the rate limit', () => {
  it('counts the rows skipped over the whole tap, not only those of the last report', async () => {
    await open('#/tap?service=backend', scripted.url);
    // The scripted tap reports 3 skipped, one row, then 4 more skipped.
    await tapState('tapping backend: 1 rows (7 skipped: over the rate limit, or while this view fell behind)').waitFor({ timeout: 5_000 });
  });
});

describe('dashboard service page', () => {
  it('says the control plane knows no such service instead of drawing its defaults, and fills in once it does', async () => {
    await open('#/service/latecomer');
    await page.locator('#svc-unknown', { hasText: 'The control plane knows no service latecomer' }).waitFor({ timeout: 10_000 });
    await page.locator('#svc-golden', { hasText: 'No traffic' }).waitFor({ timeout: 5_000 });
    for (const pretence of ['No policy stored', 'No instances registered', 'No subsets']) expect(await page.locator('#view').innerText()).not.toContain(pretence);
    await chrome.screenshot(page, 'service-unknown');
    await cp.api.put('/api/v1/services/latecomer/policy', { timeout: '3s' });
    await page.locator('#svc-policy pre', { hasText: '"timeout": "3s"' }).waitFor({ timeout: 10_000 });
    await page.locator('#svc-unknown').waitFor({ state: 'hidden', timeout: 1_000 });
  });
});

describe('dashboard header', () => {
  it("says nothing of the previous view's error once another view is open", async () => {
    await open('#/graph', scripted.url);
    await page.locator('#status', { hasText: 'error: stats are resting' }).waitFor({ timeout: 5_000 });
    await page.click('nav a[data-view="tap"]');
    // The tap view's own request has answered by the time it has listed the services.
    await page.locator('#tap-service option', { hasText: 'backend' }).waitFor({ state: 'attached', timeout: 5_000 });
    expect(await page.locator('#status').textContent()).not.toContain('error');
  });
});
