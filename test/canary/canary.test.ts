/**
 * Automated canary rollouts end to end, all real processes: a control plane, sidecars in
 * control-plane mode for `web` (the caller) and `backend` v1 and v2, and paced traffic
 * web → backend while the controller moves the split. v2's app fails every other request
 * when `v2Fails` is set, so one mesh serves both the healthy and the failing rollout.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CanaryState } from '../../control-plane/canary/controller.js';
import { startControlPlane, type ControlPlaneProcess } from '../control-plane/harness.js';
import { get, skeinCli, startMeshSidecar, type MeshSidecar } from '../identity/mesh.js';
import { apiError, echoHandler, Processes, startUpstream, waitUntil, type TestUpstream } from '../support/index.js';

const procs = new Processes();
let cp: ControlPlaneProcess;
let web: MeshSidecar;
const apps: TestUpstream[] = [];
let v2Fails = false;
let v2Calls = 0;

function v2Handler(req: IncomingMessage, res: ServerResponse): void {
  // Its sidecar's health check (GET /health) always passes: three failed in a row would take v2
  // out of the endpoints, and the next tests' rollouts to it would be refused (409, no healthy
  // instance) until a check passed again.
  const fail = v2Fails && req.url !== '/health' && v2Calls++ % 2 === 0;
  res.writeHead(fail ? 500 : 200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ name: 'backend-v2' }));
}

/** Paced requests web → backend (about 100/s) until stopped; what answered each. */
function traffic() {
  let running = true;
  const answeredBy: string[] = [];
  const loop = (async () => {
    while (running) {
      const r = await get(web, 'backend', '/canary');
      answeredBy.push(r.status === 200 ? (JSON.parse(r.body) as { name: string }).name : `status ${r.status}`);
      await sleep(10); // pacing, not synchronisation: keeps a modest load on shared cores
    }
  })();
  return { answeredBy, stop: async () => ((running = false), await loop) };
}

async function servedBy(n: number): Promise<Set<string>> {
  const names = new Set<string>();
  for (let i = 0; i < n; i++) names.add((JSON.parse((await get(web, 'backend', '/after')).body) as { name: string }).name);
  return names;
}

const canary = async () => (await cp.api.get<CanaryState>('/api/v1/canaries/backend')).body;
const split = async () => (await cp.api.get<{ match?: unknown; split?: Record<string, number> }[]>('/api/v1/routes/backend')).body.at(-1)!.split;
const ended = (timeoutMs: number) => waitUntil(async () => ((await canary()).status !== 'running' ? canary() : undefined), { timeoutMs, intervalMs: 200, what: 'the rollout to end' });

beforeAll(async () => {
  // No resync hold: its refusals of unknown subsets would be 503s to try again (resync-refusals.test.ts).
  cp = await startControlPlane(procs, { args: ['--resync-hold', '0s'] });
  const app = async (h: (req: IncomingMessage, res: ServerResponse) => void) => {
    const u = await startUpstream(h);
    apps.push(u);
    return u.port;
  };
  [web] = await Promise.all([
    app(echoHandler('web')).then((port) => startMeshSidecar(procs, cp, { service: 'web', appPort: port })),
    app(echoHandler('backend-v1')).then((port) => startMeshSidecar(procs, cp, { service: 'backend', version: 'v1', appPort: port })),
    app(v2Handler).then((port) => startMeshSidecar(procs, cp, { service: 'backend', version: 'v2', appPort: port })),
  ]);
}, 90_000);

afterAll(async () => {
  await procs.killAll();
  await Promise.all(apps.map((a) => a.close()));
});

beforeEach(async () => {
  v2Fails = false;
  await cp.api.put('/api/v1/routes/backend', [{ match: { pathPrefix: '/' }, split: { v1: 100 } }]);
  await waitUntil(async () => ((await servedBy(5)).has('backend-v2') ? undefined : true), { what: 'traffic on v1 only' });
});

describe('canary rollouts', () => {
  it('moves a healthy v2 to 100% step by step, judging each step on v2’s own metrics', async () => {
    const load = traffic();
    try {
      const started = await cp.api.post<CanaryState>('/api/v1/canaries/backend', { to: 'v2', steps: [50, 100], interval: '1500ms', thresholds: { minRequests: 10 } });
      expect(started.status).toBe(201);
      expect(started.body).toMatchObject({ status: 'running', step: 0, weight: 50 });
      expect(await split()).toEqual({ v1: 50, v2: 50 });
      const done = await ended(20_000);
      expect(done.status, JSON.stringify(done)).toBe('succeeded');
      expect(done.weight).toBe(100);
      const first = done.analyses[0]!;
      expect(first, JSON.stringify(done.analyses)).toMatchObject({ step: 0, weight: 50, decision: 'advance' });
      expect(first.measured.requests).toBeGreaterThanOrEqual(10);
      expect(first.measured.successRate).toBe(1);
    } finally {
      await load.stop();
    }
    // Half the load went to v2 during its step; now all of it does.
    expect(load.answeredBy).toContain('backend-v2');
    expect(await split()).toEqual({ v2: 100 });
    expect(await servedBy(20)).toEqual(new Set(['backend-v2']));
  }, 40_000);

  it('skein canary follows a healthy rollout to the end and exits 0 (-o json prints the final state)', async () => {
    const load = traffic();
    let cli: { code: number | null; output: string };
    try {
      cli = await skeinCli(procs, cp, ['canary', 'backend', '--to', 'v2', '--steps', '50,100', '--interval', '1s', '--min-requests', '5', '-o', 'json']);
    } finally {
      await load.stop();
    }
    expect(cli.code, cli.output).toBe(0);
    const final = JSON.parse(cli.output) as CanaryState;
    expect(final).toMatchObject({ status: 'succeeded', weight: 100, spec: { from: 'v1', to: 'v2', steps: [50, 100], interval: 1000 } });
    expect(await split()).toEqual({ v2: 100 });
  }, 40_000);

  it('with the single step 100, switches at once and succeeds once v2 passes its analysis there', async () => {
    const load = traffic();
    let cli: { code: number | null; output: string };
    try {
      cli = await skeinCli(procs, cp, ['canary', 'backend', '--to', 'v2', '--steps', '100', '--interval', '1s', '--min-requests', '5', '-o', 'json']);
    } finally {
      await load.stop();
    }
    expect(cli.code, cli.output).toBe(0);
    const final = JSON.parse(cli.output) as CanaryState;
    expect(final).toMatchObject({ status: 'succeeded', weight: 100, step: 0 });
    expect(final.analyses).toEqual([expect.objectContaining({ weight: 100, decision: 'advance' })]);
    expect(await split()).toEqual({ v2: 100 });
  }, 40_000);

  it('rolls back a v2 that fails half its requests, naming the success rate (skein canary exits 1)', async () => {
    v2Fails = true;
    const load = traffic();
    let cli: { code: number | null; output: string };
    try {
      cli = await skeinCli(procs, cp, ['canary', 'backend', '--to', 'v2', '--steps', '50,100', '--interval', '1500ms', '--min-requests', '10']);
    } finally {
      await load.stop();
    }
    expect(cli.code, cli.output).toBe(1);
    expect(cli.output).toMatch(/step 1\s+50%: \d+ requests, success \d+\.\d+%.*→ rollback \(success rate/);
    const done = await canary();
    expect(done.status).toBe('rolled-back');
    expect(done.reason).toMatch(/success rate \d+\.\d+% of v2 is below minSuccessRate 99\.00%/);
    expect(done.analyses[0]!.measured.successRate).toBeLessThan(0.8);
    expect(await split()).toEqual({ v1: 100 });
    expect(await servedBy(20)).toEqual(new Set(['backend-v1']));
  }, 40_000);

  it('judges a step only on traffic its split routed: a caller’s report held across the switch, of v2 failing before, does not roll a healthy v2 back', async () => {
    // An operator tries v2 by hand at half the traffic, and it fails every other request.
    v2Fails = true;
    await cp.api.put('/api/v1/routes/backend/split', { v1: 50, v2: 50 });
    const load = traffic();
    let frozen = false;
    try {
      await waitUntil(() => load.answeredBy.filter((a) => a === 'status 500').length >= 5 || undefined, { what: 'v2 failing requests through web' });
      // web's sidecar stops with failures counted and not reported yet (it goes on serving them
      // until stopped): its next report, sent once it continues, began under the hand split.
      web.child.process.kill('SIGSTOP');
      frozen = true;
      v2Fails = false;
      const started = await cp.api.post<CanaryState>('/api/v1/canaries/backend', { to: 'v2', steps: [25, 100], interval: '4s', thresholds: { minRequests: 10 } });
      expect(started.status).toBe(201);
      // Continued only past the instant a report without `fromSnapshot` would count from (1.2 s
      // into the step): until 2026-12-07 every report did, this one with v2's failures.
      const unversionedFrom = Date.parse(started.body.stepStartedAt) + 1_200;
      await waitUntil(() => Date.now() > unversionedFrom || undefined, { intervalMs: 50, what: "the step's first 1.2 s" });
      web.child.process.kill('SIGCONT');
      frozen = false;
      const done = await ended(40_000);
      expect(done.status, JSON.stringify(done)).toBe('succeeded');
      expect(done.analyses.map((a) => a.measured.successRate ?? 1), JSON.stringify(done.analyses)).toEqual(done.analyses.map(() => 1));
    } finally {
      if (frozen) web.child.process.kill('SIGCONT');
      await load.stop();
    }
  }, 60_000);

  it('aborts on DELETE (and skein canary --abort), restoring from=100; a second start is a 409', async () => {
    const detached = await skeinCli(procs, cp, ['canary', 'backend', '--to', 'v2', '--steps', '25,100', '--interval', '30s', '--detach']);
    expect(detached.code, detached.output).toBe(0);
    expect(await split()).toEqual({ v1: 75, v2: 25 });
    const again = await apiError(cp.api.post('/api/v1/canaries/backend', { to: 'v2' }));
    expect(again.status).toBe(409);
    const status = await skeinCli(procs, cp, ['canary', 'backend', '--status']);
    expect(status.output).toMatch(/backend: v1 → v2 running at step 1\/2 \(25% v2\)/);
    const aborted = await skeinCli(procs, cp, ['canary', 'backend', '--abort']);
    expect(aborted.code, aborted.output).toBe(0);
    expect(aborted.output).toMatch(/aborted: aborted by an operator/);
    expect(await canary()).toMatchObject({ status: 'aborted' });
    expect(await split()).toEqual({ v1: 100 });
    expect((await apiError(cp.api.delete('/api/v1/canaries/backend'))).status).toBe(409);
  });

  it('pauses (skein canary --pause --reason), resumes and promotes by hand (--promote, --full); paused, it still owns its split', async () => {
    const detached = await skeinCli(procs, cp, ['canary', 'backend', '--to', 'v2', '--steps', '25,50,100', '--interval', '30s', '--detach']);
    expect(detached.code, detached.output).toBe(0);
    const paused = await skeinCli(procs, cp, ['canary', 'backend', '--pause', '--reason', 'waiting for QA']);
    expect(paused.code, paused.output).toBe(0);
    expect(paused.output).toMatch(/^backend: v1 → v2 paused at step 1\/3 \(25% v2\) since \S+: waiting for QA$/m);
    expect(await canary()).toMatchObject({ status: 'running', step: 0, weight: 25, paused: { reason: 'waiting for QA' } });
    expect((await skeinCli(procs, cp, ['canary', 'backend', '--status'])).output).toMatch(/paused at step 1\/3 \(25% v2\) since \S+: waiting for QA/);
    expect((await apiError(cp.api.put('/api/v1/routes/backend/split', { v1: 100 }))).status).toBe(409);
    expect((await apiError(cp.api.post('/api/v1/canaries/backend/pause', undefined))).message).toMatch(/is already paused \(since \S+: waiting for QA\)/);
    expect(await split()).toEqual({ v1: 75, v2: 25 });

    const resumed = await skeinCli(procs, cp, ['canary', 'backend', '--resume']);
    expect(resumed.output).toMatch(/^backend: v1 → v2 running at step 1\/3 \(25% v2\)$/m);
    expect((await apiError(cp.api.post('/api/v1/canaries/backend/resume', undefined))).status).toBe(409);

    const promoted = (await cp.api.post<CanaryState>('/api/v1/canaries/backend/promote', undefined)).body;
    expect(promoted).toMatchObject({ status: 'running', step: 1, weight: 50, analyses: [], promotions: [{ step: 0, weight: 25, full: false }] });
    expect(await split()).toEqual({ v1: 50, v2: 50 });
    await waitUntil(async () => ((await servedBy(20)).has('backend-v2') ? true : undefined), { what: 'sidecars routing by the promoted step' });
    expect((await apiError(cp.api.post('/api/v1/canaries/backend/promote?full=maybe', undefined))).status).toBe(400);

    const full = await skeinCli(procs, cp, ['canary', 'backend', '--promote', '--full']);
    expect(full.code, full.output).toBe(0);
    expect(full.output).toMatch(/backend: v1 → v2 succeeded: promoted by an operator at step 2 of 3 \(50% v2\) to 100%, skipping its analysis$/m);
    expect(await split()).toEqual({ v2: 100 });
    await waitUntil(async () => ((await servedBy(10)).has('backend-v1') ? undefined : true), { what: 'traffic on v2 only' });
    expect((await apiError(cp.api.post('/api/v1/canaries/backend/promote', undefined))).message).toMatch(/is not running: it succeeded/);
    const none = await apiError(cp.api.post('/api/v1/canaries/nothing/pause', undefined));
    expect(none.status).toBe(404);
    for (const flags of [['--full'], ['--reason', 'x'], ['--pause', '--resume'], ['--promote', '--to', 'v2']]) {
      const usage = await skeinCli(procs, cp, ['canary', 'backend', ...flags]);
      expect(usage.code, `${flags.join(' ')}: ${usage.output}`).toBe(2);
    }
    // The OpenAPI description is built from the same route table.
    const doc = (await cp.api.get<{ paths: Record<string, { post?: { parameters?: { name: string }[] } }> }>('/api/v1/openapi.json')).body;
    for (const action of ['pause', 'resume', 'promote']) expect(doc.paths[`/api/v1/canaries/{service}/${action}`]?.post, action).toBeDefined();
    expect(doc.paths['/api/v1/canaries/{service}/promote']!.post!.parameters!.map((p) => p.name)).toEqual(['service', 'full']);
    expect(doc.paths['/api/v1/canaries/{service}/pause']!.post!.parameters!.map((p) => p.name)).toEqual(['service', 'reason']);
  }, 40_000);

  it('refuses bad bodies with 422 naming the field, and bad flags with exit 2', async () => {
    const cases: [unknown, RegExp][] = [
      [{ steps: [10, 100] }, /^to: /],
      [{ to: 'v2', steps: [10, 50] }, /^steps: the last step must be 100/],
      [{ to: 'v2', interval: 'soon' }, /^interval: invalid duration/],
      [{ to: 'v2', thresholds: { maxP99: 5 , bogus: 1 } }, /^thresholds: unknown field "bogus"/],
      [{ to: 'v9' }, /^to: unknown subset "v9" of backend/],
      [{ from: 'v8', to: 'v2' }, /^from: unknown subset "v8" of backend/],
      [{ to: 'v2', thresholds: { minRequests: 0 } }, /^thresholds\.minRequests: must be at least 1/],
    ];
    for (const [body, problem] of cases) {
      const err = await apiError(cp.api.post('/api/v1/canaries/backend', body));
      expect(err.status, `${JSON.stringify(body)}: ${err.message}`).toBe(422);
      expect(err.problems.some((p) => problem.test(p)), `${JSON.stringify(body)}: ${err.problems.join('; ')}`).toBe(true);
    }
    expect(await split()).toEqual({ v1: 100 });
    const noTo = await skeinCli(procs, cp, ['canary', 'backend']);
    expect(noTo.code).toBe(2);
    const badSteps = await skeinCli(procs, cp, ['canary', 'backend', '--to', 'v2', '--steps', '10,x']);
    expect(badSteps.code).toBe(2);
    const noRequests = await skeinCli(procs, cp, ['canary', 'backend', '--to', 'v2', '--min-requests', '0']);
    expect(noRequests.code, noRequests.output).toBe(2);
    expect(noRequests.output).toMatch(/--min-requests: must be at least 1: a step with no request to the canary proves nothing about it/);
    const same = await skeinCli(procs, cp, ['canary', 'backend', '--to', 'v2', '--from', 'v2']);
    expect(same.code, same.output).toBe(2);
    expect(same.output).toMatch(/--to: must differ from --from/);
  });

  it('refuses a rollout to a declared subset with no healthy instance (409 naming to), writing nothing', async () => {
    await cp.api.put('/api/v1/services/backend/policy', { subsets: { v1: { version: 'v1' }, v2: { version: 'v2' }, v3: { version: 'v3' } } });
    try {
      const cli = await skeinCli(procs, cp, ['canary', 'backend', '--to', 'v3', '--interval', '1s']);
      expect(cli.code, cli.output).toBe(1);
      expect(cli.output).toMatch(/skein: 409 conflict: to: subset v3 of backend has no healthy instance, so 10% of its requests would fail; start the rollout once one is ready/);
      expect(await split()).toEqual({ v1: 100 });
    } finally {
      await cp.api.delete('/api/v1/services/backend/policy');
    }
  });

  it('refuses a rollout, and a split, that a rule before the catch-all would keep requests from, naming it; nothing is written', async () => {
    // The README's shape: GET and HEAD are split by rule 1, so a catch-all added after it would get only the other methods.
    const shadowed = [
      { match: { pathPrefix: '/', headers: { 'x-canary': 'true' } }, split: { v2: 100 } },
      { match: { pathPrefix: '/', method: ['GET', 'HEAD'] }, split: { v1: 100 } },
    ];
    await cp.api.put('/api/v1/routes/backend', shadowed);
    const rollout = await skeinCli(procs, cp, ['canary', 'backend', '--to', 'v2', '--steps', '50,100', '--interval', '1s', '--min-requests', '5']);
    expect(rollout.code, rollout.output).toBe(1);
    expect(rollout.output).toMatch(/skein: 409 conflict: a split of backend would not steer all its traffic: rule 1 "rule-1" \(match \{"pathPrefix":"\/","method":\["GET","HEAD"\]\}\) comes before the catch-all rule that would be added last/);
    expect((await canary()).status).not.toBe('running');
    const split = await skeinCli(procs, cp, ['split', 'backend', 'v2=100']);
    expect(split.code, split.output).toBe(1);
    expect(split.output).toMatch(/409 conflict: a split of backend would not steer all its traffic: rule 1 "rule-1"/);
    const raw = await fetch(`${cp.adminUrl}/api/v1/routes/backend/split`, { method: 'PUT', headers: { authorization: `Bearer ${cp.adminToken}`, 'content-type': 'application/json' }, body: '{"v2": 100}' });
    expect(raw.status).toBe(409);
    expect(((await raw.json()) as { error: { shadowedBy: unknown } }).error.shadowedBy).toEqual([{ index: 1, name: 'rule-1', match: shadowed[1]!.match }]);
    expect((await cp.api.get('/api/v1/routes/backend')).body).toEqual(shadowed);
    expect(await servedBy(10)).toEqual(new Set(['backend-v1']));
  }, 40_000);

  it('skein split moves the traffic of a catch-all rule spelt with an empty headers match, in place', async () => {
    await cp.api.put('/api/v1/routes/backend', [{ name: 'all', match: { pathPrefix: '/', headers: {} }, split: { v1: 100 } }]);
    const res = await skeinCli(procs, cp, ['split', 'backend', 'v2=100']);
    expect(res.code, res.output).toBe(0);
    expect((await cp.api.get('/api/v1/routes/backend')).body).toEqual([{ name: 'all', match: { pathPrefix: '/', headers: {} }, split: { v2: 100 } }]);
    await waitUntil(async () => ((await servedBy(10)).has('backend-v1') ? undefined : true), { what: 'traffic on v2 only' });
  }, 40_000);

  it('rolls out over a header-pinned rule ahead of the catch-all: the rollout steers every other request, the pinned rule stays', async () => {
    const pinned = { match: { pathPrefix: '/', headers: { 'x-canary': 'true' } }, split: { v2: 100 } };
    await cp.api.put('/api/v1/routes/backend', [pinned, { match: { pathPrefix: '/' }, split: { v1: 100 } }]);
    const load = traffic();
    let cli: { code: number | null; output: string };
    try {
      cli = await skeinCli(procs, cp, ['canary', 'backend', '--to', 'v2', '--steps', '50,100', '--interval', '1s', '--min-requests', '5']);
    } finally {
      await load.stop();
    }
    expect(cli.code, cli.output).toBe(0);
    expect((await cp.api.get('/api/v1/routes/backend')).body).toEqual([pinned, { match: { pathPrefix: '/' }, split: { v2: 100 } }]);
    await waitUntil(async () => ((await servedBy(10)).has('backend-v1') ? undefined : true), { what: 'traffic on v2 only' });
  }, 40_000);
});
