/**
 * `skein explain --from SOURCE` against real sidecars: what decides a call besides the route
 * rules. The intentions the destination's sidecar enforces (a denied call is answered 403
 * there, whatever rule matched), and the breakers a caller's sidecar holds open for the split's
 * subsets (it answers 503 circuit-open without sending). Explain names both as the sidecars
 * act on them: web → backend, backend's app failing every request but its health check, until
 * web's sidecar shuts down and its breakers go with it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExplainAnswer } from '../../control-plane/admin-api/explain-routes.js';
import { get, skeinCli, startMeshSidecar, type MeshSidecar } from '../identity/mesh.js';
import { echoHandler, Processes, startUpstream, waitUntil, type TestUpstream } from '../support/index.js';
import { explainBackend, failing } from './explain-fixture.js';
import { startControlPlane, type ControlPlaneProcess } from './harness.js';

const procs = new Processes();
let cp: ControlPlaneProcess;
let web: MeshSidecar;
const apps: TestUpstream[] = [];

const explained = (source?: string): Promise<ExplainAnswer> => explainBackend(cp, source);

beforeAll(async () => {
  cp = await startControlPlane(procs);
  const webApp = await startUpstream(echoHandler('web'));
  const backendApp = await startUpstream(failing);
  apps.push(webApp, backendApp);
  web = await startMeshSidecar(procs, cp, { service: 'web', appPort: webApp.port });
  await startMeshSidecar(procs, cp, { service: 'backend', appPort: backendApp.port });
}, 60_000);

afterAll(async () => {
  await procs.killAll();
  await Promise.all(apps.map((a) => a.close()));
});

describe('explain with the caller', () => {
  it('says whether the intentions admit it, as the destination sidecar decides', async () => {
    await cp.api.put('/api/v1/intentions', { defaultAction: 'allow', rules: [{ source: 'web', destination: 'backend', action: 'deny' }] });
    await waitUntil(async () => (await get(web, 'backend', '/x')).reason === 'denied' || undefined, { what: 'backend to deny web' });

    const denied = await explained('web');
    expect(denied.request.source).toBe('web');
    expect(denied.intention).toEqual({ source: 'web', allowed: false, decidedBy: 'rule', rule: { index: 0, source: 'web', destination: 'backend', action: 'deny' } });
    expect((await explained('shop')).intention).toEqual({ source: 'shop', allowed: true, decidedBy: 'defaultAction' });
    expect((await explained()).intention).toBeUndefined();
    expect(denied.policy?.retriedAfterSent).toBe(true);

    const cli = await skeinCli(procs, cp, ['explain', 'backend', 'GET', '/x', '--from', 'web']);
    expect(cli.code, cli.output).toBe(0);
    expect(cli.output).toMatch(/intentions: web -> backend denied: backend's sidecar answers 403 \(x-skein-reason: denied\) by rule 0 \(web -> backend deny\)/);
    await cp.api.put('/api/v1/intentions', { defaultAction: 'allow', rules: [] });
  });

  it('says a non-idempotent request is retried only when a try never reached the upstream', async () => {
    const post = await skeinCli(procs, cp, ['explain', 'backend', 'POST', '/x']);
    expect(post.output).toMatch(/\n {2}POST is not idempotent: retried only when a try never reached the upstream \(connect-failure\)\n/);
    expect((await skeinCli(procs, cp, ['explain', 'backend', 'GET', '/x'])).output).not.toMatch(/not idempotent/);
  });

  it('names the breakers the caller\'s sidecar holds open for the subset its request would go to', async () => {
    await cp.api.put('/api/v1/services/backend/policy', { circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 5, rollingWindow: '10s', resetTimeout: '60s' } });
    expect((await explained('web')).openBreakers).toEqual([]);
    await waitUntil(async () => (await get(web, 'backend', '/x')).reason === 'circuit-open' || undefined, { what: 'web\'s breaker for backend to open', intervalMs: 50 });

    const open = await waitUntil(async () => {
      const a = await explained('web');
      return a.openBreakers?.length ? a : undefined;
    }, { what: 'the open breaker reported to the control plane' });
    expect(open.openBreakers).toEqual([{ service: 'web', instance: expect.any(String), subset: open.split[0]!.subset, state: 'open' }]);
    expect((await explained('shop')).openBreakers).toEqual([]);

    const cli = await skeinCli(procs, cp, ['explain', 'backend', 'GET', '/x']);
    expect(cli.output).toMatch(/breaker for \S+ open in web \S+: it answers 503 \(x-skein-reason: circuit-open\)/);
  });

  it('forgets the breakers of a caller\'s sidecar that shut down, rather than show them open for 30 s more', async () => {
    expect((await explained('web')).openBreakers).toHaveLength(1);
    web.child.kill('SIGTERM');
    expect((await web.child.exited).code).toBe(0);
    // Well within the 30 s a sidecar whose stream broke keeps its breakers listed.
    await waitUntil(async () => ((await explained()).openBreakers?.length === 0 ? true : undefined), { what: 'the shut-down sidecar\'s breaker to be forgotten', timeoutMs: 10_000 });
    const stats = (await cp.api.get<{ breakers: { service: string }[] }>('/api/v1/stats')).body;
    expect(stats.breakers.filter((b) => b.service === 'web')).toEqual([]);
  });
});
