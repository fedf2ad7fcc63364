/**
 * The dashboard in real headless Chromium against a real control plane and sidecars under
 * load: the graph shows the services and edges (the failing one marked), a canary slider
 * changes the split in the API and in measured traffic, the tap view receives rows, and a
 * trace opens as a waterfall. Each test saves a screenshot under test-output/dashboard/.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { Processes, waitUntil } from '../support/index.js';
import { call, startObservedMesh, type ObservedMesh } from '../observability/mesh.js';
import { launchChromium, type Headless } from './browser.js';

const procs = new Processes();
let mesh: ObservedMesh;
let chrome: Headless;
let page: Page;
let running = true;
let load: Promise<void>;
/** Every URL the page asked for, to show that all assets come from the control plane. */
const requested: string[] = [];

/** The part of a slider (`<input type=range>`) the tests drive in the page; the tests compile without the DOM types. */
interface RangeInput {
  value: string;
  dispatchEvent(event: Event): boolean;
}

/** Steady traffic: web → frontend → backend (healthy) and web → backend with 40 % failures. */
function startLoad(): Promise<void> {
  let i = 0;
  const loop = async (next: () => [string, string]) => {
    while (running) {
      const [host, path] = next();
      await call(mesh, host, path).catch(() => undefined);
      // Paced (at most ~50 calls/s per loop) so the trace store's newest 2000 span well over
      // the few seconds between the trace list and a click, as at the demo's rates.
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  return Promise.all([
    loop(() => ['frontend', '/shop']),
    loop(() => ['backend', i++ % 5 < 2 ? '/direct?status=500' : '/direct']),
  ]).then(() => undefined);
}

beforeAll(async () => {
  [mesh, chrome] = await Promise.all([startObservedMesh(procs), launchChromium()]);
  load = startLoad();
  page = await chrome.newPage();
  page.on('request', (req) => requested.push(req.url()));
}, 120_000);

afterAll(async () => {
  running = false;
  await load;
  await chrome?.close();
  await procs.killAll();
  await mesh?.close();
});

describe('dashboard', () => {
  it('shows the service graph with its edges under load, the failing edge marked', async () => {
    await page.goto(`${mesh.cp.adminUrl}/`);
    for (const service of ['web', 'frontend', 'backend']) await page.locator(`#graph [data-service="${service}"]`).waitFor({ timeout: 15_000 });
    await page.locator('#graph .edge[data-edge="web->frontend"].ok').waitFor({ timeout: 15_000 });
    await page.locator('#graph .edge[data-edge="frontend->backend"].ok').waitFor({ timeout: 15_000 });
    await page.locator('#graph .edge[data-edge="web->backend"].bad').waitFor({ timeout: 15_000 });
    const label = await page.locator('#graph .edge[data-edge="web->backend"] text').textContent();
    expect(label).toMatch(/rps · \d+(\.\d)?% · p99 \d/);
    // Edge and service tables agree with the graph.
    expect(await page.locator('#edge-box tr.edge-row').count()).toBeGreaterThanOrEqual(3);
    // Live: the figures change under load while the page stays the same document (no reload).
    await page.evaluate('window.skeinTestMarker = 1');
    const requests = () => page.locator('#edge-box tr.edge-row[data-edge="web->backend"] td').last().textContent();
    const before = await requests();
    await waitUntil(async () => (await requests()) !== before, { timeoutMs: 10_000, what: 'the edge figures to refresh' });
    expect(await page.evaluate('window.skeinTestMarker')).toBe(1);
    await chrome.screenshot(page, 'graph');
    // No CDN: the page, its script and styles and every API call are the control plane's own.
    expect(requested.filter((u) => u.endsWith('.js') || u.endsWith('.css')).length).toBeGreaterThanOrEqual(2);
    expect(requested.filter((u) => !u.startsWith(`${mesh.cp.adminUrl}/`))).toEqual([]);
  });

  it('lists requests that named no known service under their caller as "(no route)", not as an edge, and taps the caller for the name asked', async () => {
    for (let i = 0; i < 3; i++) expect((await call(mesh, 'nosuch', '/x')).status).toBe(404);
    const noEdgeToNoRoute = async (box: string) => {
      expect(await page.locator(`${box} tr.edge-row[data-edge$="->(no-route)"]`).count()).toBe(0);
      expect(await page.locator(`${box} a[href^="#/service/${encodeURIComponent('(no-route)')}"]`).count()).toBe(0);
    };
    await page.goto(`${mesh.cp.adminUrl}/#/graph`);
    const listed = page.locator('#edge-box #unrouted tr[data-unrouted="web"]');
    await listed.waitFor({ timeout: 15_000 });
    expect(await listed.locator('td').nth(1).textContent()).toBe('(no route)');
    expect(Number(await listed.locator('td').nth(3).textContent())).toBeGreaterThanOrEqual(3);
    await page.locator('#edge-box tr.edge-row[data-edge="web->backend"]').waitFor({ timeout: 15_000 });
    await noEdgeToNoRoute('#edge-box');
    await chrome.screenshot(page, 'unrouted');

    // The caller's own page says the same, and its tap shows the name each request asked for.
    await page.goto(`${mesh.cp.adminUrl}/#/service/web`);
    await page.locator('#svc-edges #unrouted tr[data-unrouted="web"]').waitFor({ timeout: 15_000 });
    await noEdgeToNoRoute('#svc-edges');
    await page.locator('#svc-edges #unrouted a.tap-link').click();
    await page.locator('#tap-state', { hasText: 'tapping web' }).waitFor({ timeout: 10_000 });
    const asked = page.locator('#tap-rows tr', { hasText: 'nosuch' });
    await waitUntil(async () => {
      await call(mesh, 'nosuch', '/x');
      return (await asked.count()) > 0;
    }, { timeoutMs: 15_000, what: 'a tap row of a request to nosuch' });
    expect(await asked.first().locator('td.num').first().textContent()).toBe('404');
  });

  it('moves a canary slider: the split API and the measured traffic follow', async () => {
    await page.goto(`${mesh.cp.adminUrl}/#/service/backend`);
    await page.fill('#token', mesh.cp.adminToken);
    await page.locator('#token').dispatchEvent('change');
    const v2 = page.locator('#split input[name="v2"]');
    await v2.waitFor({ timeout: 15_000 });
    await v2.fill('100');
    await page.locator('#split-message', { hasText: 'saved' }).waitFor({ timeout: 10_000 });
    expect(await page.locator('#split input[name="v1"]').inputValue()).toBe('0');
    const rules = (await mesh.cp.api.get<{ split?: Record<string, number> }[]>('/api/v1/routes/backend')).body;
    expect(rules.at(-1)!.split).toEqual({ v1: 0, v2: 100 });
    // Sidecars follow within a second or so: then every answer comes from v2.
    await waitUntil(async () => {
      const answers = await Promise.all(Array.from({ length: 10 }, () => call(mesh, 'backend', '/which')));
      return answers.every((a) => a.status === 200 && (JSON.parse(a.body) as { name: string }).name === 'backend-v2');
    }, { timeoutMs: 5_000, what: 'all traffic on backend v2' });

    await v2.fill('30');
    await page.locator('#split-message', { hasText: 'saved: v1=70 v2=30' }).waitFor({ timeout: 10_000 });
    await waitUntil(async () => {
      const rules = (await mesh.cp.api.get<{ split?: Record<string, number> }[]>('/api/v1/routes/backend')).body;
      return rules.at(-1)!.split?.v1 === 70;
    }, { what: 'split v1=70 v2=30' });
    await waitUntil(async () => {
      const answers = await Promise.all(Array.from({ length: 60 }, () => call(mesh, 'backend', '/which')));
      const onV1 = answers.filter((a) => a.status === 200 && (JSON.parse(a.body) as { name: string }).name === 'backend-v1').length;
      return onV1 >= 25 && onV1 <= 57;
    }, { timeoutMs: 5_000, what: 'traffic split about 70/30' });
    // The rest of the service page: both instances healthy, the callers' breakers, the policy.
    expect(await page.locator('#svc-instances tbody tr', { hasText: 'healthy' }).count()).toBe(2);
    expect(await page.locator('#svc-breakers').textContent()).toMatch(/closed|open/);
    expect(await page.locator('#svc-policy').textContent()).toMatch(/defaults apply|\{/);
    await chrome.screenshot(page, 'service-canary');
  });

  it('refuses a slider change without the admin token and says why', async () => {
    const fresh = await chrome.context.newPage();
    await fresh.goto(`${mesh.cp.adminUrl}/#/service/backend`);
    await fresh.evaluate('localStorage.removeItem("skein.token")');
    await fresh.reload();
    const v2 = fresh.locator('#split input[name="v2"]');
    await v2.waitFor({ timeout: 15_000 });
    await v2.fill('50');
    await fresh.locator('#split-message.error', { hasText: 'admin token' }).waitFor({ timeout: 10_000 });
    await fresh.close();
  });

  it('follows a split written elsewhere, and refuses to save over one written mid-edit', async () => {
    await page.goto(`${mesh.cp.adminUrl}/#/service/backend`);
    await page.fill('#token', mesh.cp.adminToken);
    await page.locator('#token').dispatchEvent('change');
    const slider = (subset: string) => page.locator(`#split input[name="${subset}"]`);
    await slider('v1').waitFor({ timeout: 15_000 });
    const split = async () => (await mesh.cp.api.get<{ split?: Record<string, number> }[]>('/api/v1/routes/backend')).body.at(-1)!.split;

    // As `skein split backend v1=40 v2=60` would: the open page follows within a poll or two.
    await mesh.cp.api.put('/api/v1/routes/backend/split', { v1: 40, v2: 60 });
    await waitUntil(async () => (await slider('v1').inputValue()) === '40' && (await slider('v2').inputValue()) === '60', { timeoutMs: 10_000, what: 'the sliders to show v1=40 v2=60' });
    await page.locator('#split-message', { hasText: 'changed elsewhere: now v1=40 v2=60' }).waitFor({ timeout: 5_000 });

    // The user starts dragging, someone else writes a split, the user lets go: not saved.
    await slider('v2').evaluate((el) => {
      const input = el as unknown as RangeInput;
      input.value = '90';
      input.dispatchEvent(new Event('input', { bubbles: true }));
    });
    await mesh.cp.api.put('/api/v1/routes/backend/split', { v1: 20, v2: 80 });
    await slider('v2').evaluate((el) => (el as unknown as RangeInput).dispatchEvent(new Event('change', { bubbles: true })));
    await page.locator('#split-message.error', { hasText: 'changed elsewhere' }).waitFor({ timeout: 10_000 });
    expect(await split()).toEqual({ v1: 20, v2: 80 });
    await waitUntil(async () => (await slider('v2').inputValue()) === '80', { timeoutMs: 5_000, what: 'the sliders to show the live v2=80' });
    await chrome.screenshot(page, 'service-canary-conflict');

    // Moved again from the fresh values, it saves (not 50/50: the STALE test below needs its write to change the split).
    await slider('v2').fill('40');
    await page.locator('#split-message', { hasText: 'saved: v1=60 v2=40' }).waitFor({ timeout: 10_000 });
    expect(await split()).toEqual({ v1: 60, v2: 40 });
  });

  it('shows the weights of the rule a split sets: the first catch-all, however its match is spelt', async () => {
    // Put back afterwards (the next tests' splits must change it): none stored when run alone.
    const before = await mesh.cp.api.get<unknown[]>('/api/v1/routes/backend').then((r) => r.body, () => undefined);
    await page.goto(`${mesh.cp.adminUrl}/#/service/backend`);
    const slider = (subset: string) => page.locator(`#split input[name="${subset}"]`);
    await slider('v1').waitFor({ timeout: 15_000 });
    try {
      await mesh.cp.api.put('/api/v1/routes/backend', [
        { match: { headers: { 'x-canary': 'true' } }, split: { v2: 100 } },
        { name: 'all', match: { pathPrefix: '/', headers: {} }, split: { v1: 30, v2: 70 } },
        { name: 'unreachable', match: { pathPrefix: '/' }, split: { v1: 100 } },
      ]);
      await waitUntil(async () => (await slider('v1').inputValue()) === '30' && (await slider('v2').inputValue()) === '70', { timeoutMs: 10_000, what: 'the sliders to show rule "all": v1=30 v2=70' });
    } finally {
      await (before ? mesh.cp.api.put('/api/v1/routes/backend', before) : mesh.cp.api.delete('/api/v1/routes/backend'));
    }
  });

  it('shows the running rollout that owns the split, paused, and how it ended', async () => {
    await page.goto(`${mesh.cp.adminUrl}/#/service/backend`);
    // A long interval: it stays at its first step, unanalysed, until aborted.
    await mesh.cp.api.post('/api/v1/canaries/backend', { to: 'v2', steps: [50, 100], interval: '60s' });
    try {
      const running = page.locator('#rollout', { hasText: 'running' });
      await running.waitFor({ timeout: 10_000 });
      expect(await running.textContent()).toMatch(/^rollout v1 → v2 running: step 1 of 2 at 50% v2, analysed every 60s; it owns this split until it ends/);
      await mesh.cp.api.post('/api/v1/canaries/backend/pause?reason=waiting%20for%20QA', undefined);
      const paused = page.locator('#rollout', { hasText: 'paused' });
      await paused.waitFor({ timeout: 10_000 });
      expect(await paused.textContent()).toMatch(/^rollout v1 → v2 paused since .* \(waiting for QA\): step 1 of 2 at 50% v2, not analysed until resumed; it owns this split until it ends/);
    } finally {
      await mesh.cp.api.delete('/api/v1/canaries/backend');
    }
    const ended = page.locator('#rollout', { hasText: 'aborted' });
    await ended.waitFor({ timeout: 10_000 });
    expect(await ended.textContent()).toMatch(/^last rollout v1 → v2 aborted .*: aborted by an operator$/);
  });

  it('shows live tap rows', async () => {
    await page.goto(`${mesh.cp.adminUrl}/#/tap?service=backend`);
    await waitUntil(async () => (await page.locator('#tap-rows tr').count()) >= 5, { timeoutMs: 10_000, what: 'five tap rows' });
    const first = await page.locator('#tap-rows tr').first().textContent();
    expect(first).toMatch(/GET/);
    // Newest first, also across batches from the two backend sidecars.
    const times = await page.locator('#tap-rows tr').evaluateAll((rows) => rows.map((r) => Number(r.getAttribute('data-time'))));
    expect(times).toEqual([...times].sort((a, b) => b - a));
    await chrome.screenshot(page, 'tap');
    await page.click('#tap-stop');
  });

  it('opens a trace as a waterfall across services', async () => {
    await page.goto(`${mesh.cp.adminUrl}/#/traces`);
    const link = page.locator('#traces-box tr', { hasText: 'frontend' }).locator('a.trace-link').first();
    await link.waitFor({ timeout: 15_000 });
    await link.click();
    await waitUntil(async () => (await page.locator('#trace-box .span-row').count()) === 4, { timeoutMs: 10_000, what: 'four spans in the waterfall' }).catch(async (err: Error) => {
      throw new Error(`${err.message}; the page shows: ${await page.locator('#trace-box').textContent()}`);
    });
    expect(await page.locator('#trace-box .bar').count()).toBe(4);
    await page.locator('#trace-box .span-row').nth(3).click();
    expect(await page.locator('#span-box').textContent()).toContain('"traceId"');
    await chrome.screenshot(page, 'trace');
    // One the store no longer has (it keeps the newest only) says so instead of an error.
    await page.goto(`${mesh.cp.adminUrl}/#/trace/${'0'.repeat(31)}1`);
    await page.locator('#trace-box .empty', { hasText: 'not in the control plane’s trace store' }).waitFor({ timeout: 5_000 });
  });

  it("shows each retry's span under its hop, named by its number, with the try it sent under it", async () => {
    const traceId = 'beef'.repeat(8);
    // 503 is a gateway error: retried twice, so web's hop, its two retries and backend's three tries.
    expect((await call(mesh, 'backend', '/flaky?status=503', { traceparent: `00-${traceId}-4444444444444444-01` })).status).toBe(503);
    await page.goto(`${mesh.cp.adminUrl}/#/trace/${traceId}`);
    await waitUntil(async () => (await page.locator('#trace-box .span-row').count()) === 6, { timeoutMs: 15_000, what: 'six spans of the retried trace' });
    const rows = await page.locator('#trace-box .span-row .label').evaluateAll((els) => els.map((e) => ({ text: e.textContent ?? '', indent: e.getAttribute('style') ?? '' })));
    const retries = rows.filter((r) => / retry \d/.test(r.text));
    expect(retries.map((r) => /retry (\d)/.exec(r.text)![1]).sort()).toEqual(['1', '2']);
    // Under the hop (one level in), and each retry's try at backend one level further.
    expect(retries.map((r) => r.indent)).toEqual(['padding-left:16px', 'padding-left:16px']);
    expect(rows.filter((r) => r.indent === 'padding-left:32px')).toHaveLength(2);
  });

  it("colours the waterfall's bars by outcome: 4xx amber, 5xx and the sidecar's own answers red, with a legend saying why", async () => {
    /** The bars' classes and titles of a trace sent with `traceId`, once all `spans` have arrived. */
    const bars = async (traceId: string, spans: number) => {
      await page.goto(`${mesh.cp.adminUrl}/#/trace/${traceId}`);
      await waitUntil(async () => (await page.locator('#trace-box .bar').count()) === spans, { timeoutMs: 15_000, what: `${spans} spans of ${traceId}` });
      return page.locator('#trace-box .bar').evaluateAll((els) => els.map((e) => ({ cls: e.getAttribute('class') ?? '', title: e.getAttribute('title') ?? '' })));
    };
    const traceId = (n: number) => `${'c0ffee'.repeat(5)}${n}${n}`;
    // A 4xx from the app, relayed by both hops; a 5xx; a no-route answer web's sidecar made itself (one span).
    expect((await call(mesh, 'backend', '/direct?status=404', { traceparent: `00-${traceId(1)}-1111111111111111-01` })).status).toBe(404);
    expect((await call(mesh, 'backend', '/direct?status=500', { traceparent: `00-${traceId(2)}-2222222222222222-01` })).status).toBe(500);
    expect((await call(mesh, 'nosuch', '/x', { traceparent: `00-${traceId(3)}-3333333333333333-01` })).status).toBe(404);

    const amber = await bars(traceId(1), 2);
    for (const bar of amber) {
      expect(bar.cls.split(' ')).toContain('client-error');
      expect(bar.cls.split(' ')).not.toContain('error');
      expect(bar.title).toContain('not counted as failed');
    }
    await expect(page.locator('#trace-box .waterfall-legend').textContent()).resolves.toContain('answered by the sidecar itself');
    await chrome.screenshot(page, 'trace-4xx');
    const red = await bars(traceId(2), 2);
    for (const bar of red) {
      expect(bar.cls.split(' ')).toContain('error');
      expect(bar.title).toContain('failed: status 500');
    }
    const own = await bars(traceId(3), 1);
    expect(own[0]!.cls.split(' ')).toContain('error');
    expect(own[0]!.title).toBe('failed: answered by the web sidecar itself (x-skein-reason: no-route)');
    await chrome.screenshot(page, 'trace-sidecar-answer');
  });

  it('lists the proxies with sync state and certificate expiry', async () => {
    await page.goto(`${mesh.cp.adminUrl}/#/proxies`);
    await page.locator('#proxies-box .badge.SYNCED').first().waitFor({ timeout: 10_000 });
    expect(await page.locator('#proxies-box tbody tr').count()).toBe(4);
    expect(await page.locator('#proxies-box tbody tr').first().textContent()).toMatch(/\d+(\.\d)? h/);
    // Each with its identity (who is in which trust domain).
    expect(await page.locator('#proxies-box tbody tr', { hasText: 'frontend' }).textContent()).toContain('spiffe://skein.local/service/frontend');
    await chrome.screenshot(page, 'proxies');
  });

  it('marks a proxy that has not taken the current snapshot STALE, and SYNCED once it has', async () => {
    await page.goto(`${mesh.cp.adminUrl}/#/proxies`);
    const frontendState = page.locator('#proxies-box tbody tr', { hasText: 'frontend' }).locator('.badge').first();
    await frontendState.filter({ hasText: 'SYNCED' }).waitFor({ timeout: 10_000 });
    // A frozen sidecar cannot ACK a new snapshot; the control plane drops its stream only
    // after a keepalive goes unanswered for 5 s, so it is listed STALE meanwhile.
    mesh.frontend.child.process.kill('SIGSTOP');
    try {
      await mesh.cp.api.put('/api/v1/routes/backend/split', { v1: 50, v2: 50 });
      await frontendState.filter({ hasText: 'STALE' }).waitFor({ timeout: 4_500 });
      await chrome.screenshot(page, 'proxies-stale');
    } finally {
      mesh.frontend.child.process.kill('SIGCONT');
    }
    await frontendState.filter({ hasText: 'SYNCED' }).waitFor({ timeout: 15_000 });
  });

  it('lists on the service page the endpoints callers\' sidecars hold ejected, with the caller', async () => {
    // A rule without a split, over both endpoints, not the split the slider tests left (one
    // endpoint per subset): an ejected endpoint alone in its subset still gets its subset's
    // requests (panic routing), and the load's next success there returns it, so its ejection
    // lasted some ms and the page saw it only if a stats report and a poll both fell inside one.
    // Here the other endpoint takes the traffic and the ejection holds its 60 s.
    await mesh.cp.api.put('/api/v1/routes/backend', [{ match: { pathPrefix: '/' } }]);
    await mesh.cp.api.put('/api/v1/services/backend/policy', { outlierDetection: { consecutiveErrors: 3, baseEjectionTime: '60s', maxEjectionPercent: 50 } });
    try {
      await page.goto(`${mesh.cp.adminUrl}/#/service/backend`);
      await page.locator('#svc-ejections .empty').waitFor({ timeout: 10_000 });
      // Bursts of failures: one of backend's two endpoints fails three in a row between the load's successes.
      await waitUntil(async () => {
        await Promise.all(Array.from({ length: 12 }, () => call(mesh, 'backend', '/direct?status=500')));
        return (await page.locator('#svc-ejections tbody tr').count()) > 0 || undefined;
      }, { timeoutMs: 15_000, intervalMs: 200, what: 'an ejected backend endpoint on the service page' });
      expect(await page.locator('#svc-ejections tbody tr').first().textContent()).toMatch(/^web .*127\.0\.0\.1:\d+.*3 consecutive errors$/);
      await chrome.screenshot(page, 'service-ejections');
    } finally {
      await mesh.cp.api.delete('/api/v1/services/backend/policy');
    }
  });
});
