/**
 * The dashboard in real headless Chromium when something goes wrong, against a real control
 * plane: a tap it refuses shows its reason (an EventSource hides it), a tap whose control
 * plane goes away says it retries and taps again once it is back, and the page of a service
 * it does not know says so.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { Processes } from '../support/index.js';
import { startControlPlane, type ControlPlaneProcess } from '../control-plane/harness.js';
import { launchChromium, type Headless } from './browser.js';

const procs = new Processes();
let cp: ControlPlaneProcess;
let chrome: Headless;
let page: Page;

beforeAll(async () => {
  [cp, chrome] = await Promise.all([startControlPlane(procs), launchChromium()]);
  // Known to the control plane by its policy alone: no sidecar needed to open a tap on it.
  await cp.api.put('/api/v1/services/backend/policy', { timeout: '2s' });
}, 60_000);

afterAll(async () => {
  await chrome?.close();
  await procs.killAll();
});

/** A fresh page per test, so one test's open view or tap does not carry into the next. */
async function open(hash: string): Promise<Page> {
  page = await chrome.newPage();
  await page.goto(`${cp.adminUrl}/${hash}`);
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
