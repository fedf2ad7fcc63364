/**
 * `skein explain` (and `skein stat SERVICE`) name the endpoints callers' sidecars hold ejected
 * by outlier detection, as they report them on their streams: web → backend, backend's app failing every request but
 * its health check until web's sidecar ejects it; the ejection leaves the list when it ends,
 * and when web's sidecar shuts down.
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
let backend: MeshSidecar;
const apps: TestUpstream[] = [];

const explained = (source?: string): Promise<ExplainAnswer> => explainBackend(cp, source);

/** Sets backend's outlier detection (its only endpoint may be ejected) and waits until web's sidecar runs it. */
async function ejectFor(baseEjectionTime: string, ms: number): Promise<void> {
  await cp.api.put('/api/v1/services/backend/policy', { outlierDetection: { consecutiveErrors: 3, baseEjectionTime, maxEjectionPercent: 100 } });
  await waitUntil(async () => {
    const config = (await (await fetch(`${web.adminUrl}/config`)).json()) as { snapshot: { services: Record<string, { outlierDetection?: { baseEjectionTime: number } }> } };
    return config.snapshot.services.backend?.outlierDetection?.baseEjectionTime === ms || undefined;
  }, { what: `web to run backend's ${baseEjectionTime} ejection` });
}

/** Sends web's requests to backend until web's sidecar ejects it (its /clusters says so). */
async function ejectBackend(): Promise<void> {
  await waitUntil(async () => {
    await get(web, 'backend', '/x');
    const clusters = (await (await fetch(`${web.adminUrl}/clusters`)).json()) as { backend?: { endpoints: { health: string }[] } };
    return clusters.backend?.endpoints.some((e) => e.health === 'ejected') || undefined;
  }, { what: 'web\'s sidecar to eject backend', intervalMs: 50 });
}

/** Explain's list once it is not empty (the sidecar reports once a second). */
function listed(source?: string): Promise<ExplainAnswer> {
  return waitUntil(async () => {
    const a = await explained(source);
    return a.ejectedEndpoints?.length ? a : undefined;
  }, { what: 'the ejection reported to the control plane' });
}

beforeAll(async () => {
  cp = await startControlPlane(procs);
  const webApp = await startUpstream(echoHandler('web'));
  const backendApp = await startUpstream(failing);
  apps.push(webApp, backendApp);
  web = await startMeshSidecar(procs, cp, { service: 'web', appPort: webApp.port });
  backend = await startMeshSidecar(procs, cp, { service: 'backend', appPort: backendApp.port });
}, 60_000);

afterAll(async () => {
  await procs.killAll();
  await Promise.all(apps.map((a) => a.close()));
});

describe('explain names ejected endpoints', () => {
  it('lists the endpoint a caller\'s sidecar ejected, with the caller, until when and why, and drops it when the ejection ends', async () => {
    // 500 is no gateway-error: each request is one try.
    await ejectFor('3s', 3_000);
    expect((await explained('web')).ejectedEndpoints).toEqual([]);
    await ejectBackend();

    const answer = await listed('web');
    const [ejected] = answer.ejectedEndpoints!;
    expect(answer.ejectedEndpoints).toEqual([{ service: 'web', instance: expect.any(String), endpoint: `127.0.0.1:${backend.inboundPort}`, since: expect.any(String), until: expect.any(String), reason: '3 consecutive errors' }]);
    expect(Date.parse(ejected!.until) - Date.parse(ejected!.since)).toBe(3_000);
    expect((await explained('shop')).ejectedEndpoints).toEqual([]);
    const cli = await skeinCli(procs, cp, ['explain', 'backend', 'GET', '/x']);
    expect(cli.output).toContain(`endpoint 127.0.0.1:${backend.inboundPort} ejected by web ${ejected!.instance} until ${ejected!.until} (3 consecutive errors): it sends it nothing while another endpoint is not ejected`);

    // No request in the meantime: the ejection ends at its time and the list is empty again.
    await waitUntil(async () => ((await explained()).ejectedEndpoints?.length === 0 ? true : undefined), { what: 'the ended ejection to leave the list' });
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(ejected!.until));
  });

  it('lists a long ejection in skein stat too, and forgets the ejections of a caller\'s sidecar that shut down, rather than list them for 30 s more', async () => {
    await ejectFor('60s', 60_000);
    await ejectBackend();
    const [ejected] = (await listed()).ejectedEndpoints!;
    // `skein stat` lists it under the edges, as it lists open breakers.
    const stat = (await skeinCli(procs, cp, ['stat', 'backend'])).output.split('\n');
    const head = stat.findIndex((l) => l.startsWith('EJECTED BY'));
    expect(head, stat.join('\n')).toBeGreaterThan(0);
    expect(stat[head]!.split(/\s{2,}/)).toEqual(['EJECTED BY', 'DESTINATION', 'ENDPOINT', 'UNTIL', 'REASON']);
    expect(stat[head + 1]!.split(/\s{2,}/)).toEqual([`web ${ejected!.instance}`, 'backend', `127.0.0.1:${backend.inboundPort}`, ejected!.until, '3 consecutive errors']);
    web.child.kill('SIGTERM');
    expect((await web.child.exited).code).toBe(0);
    // Well within the 60 s ejection and the 30 s a sidecar whose stream broke keeps its reports listed.
    await waitUntil(async () => ((await explained()).ejectedEndpoints?.length === 0 ? true : undefined), { what: 'the shut-down sidecar\'s ejection to be forgotten', timeoutMs: 10_000 });
    const stats = (await cp.api.get<{ ejections: { service: string }[] }>('/api/v1/stats')).body;
    expect(stats.ejections).toEqual([]);
  });
});
