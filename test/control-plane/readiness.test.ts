/**
 * The built-in registry follows each sidecar's readiness (SPEC §3, §5): an instance whose app
 * fails its health check, or whose sidecar drains, is listed `critical` and stops being an
 * endpoint for the other sidecars, as a failing Consul check would make it; it comes back
 * when the sidecar is ready again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echoHandler, Processes, startUpstream, waitUntil, type TestUpstream } from '../support/index.js';
import { answeredBy, instanceHealth, startMeshSidecar, type MeshSidecar } from '../identity/mesh.js';
import { startControlPlane, type ControlPlaneProcess } from './harness.js';

const procs = new Processes();
const apps: TestUpstream[] = [];
let cp: ControlPlaneProcess;
let frontend: MeshSidecar;
let a: MeshSidecar;
let b: MeshSidecar;
/** catalog-b's app answers its health check with 500 while false. */
let bHealthy = true;

async function catalogApp(name: string, healthy: () => boolean): Promise<number> {
  const echo = echoHandler(name);
  const u = await startUpstream((req, res) => {
    if (req.url === '/health' && !healthy()) res.writeHead(500).end();
    else echo(req, res);
  });
  apps.push(u);
  return u.port;
}

/** Which catalog app answered each of `n` requests through the frontend's sidecar. */
const sample = (n: number): Promise<string[]> => answeredBy(frontend, 'catalog', n);

const health = (sidecar: MeshSidecar): Promise<string | undefined> => instanceHealth(cp, 'catalog', sidecar.inboundPort);

beforeAll(async () => {
  cp = await startControlPlane(procs);
  [frontend, a, b] = await Promise.all([
    startMeshSidecar(procs, cp, { service: 'frontend', appPort: await catalogApp('frontend', () => true) }),
    startMeshSidecar(procs, cp, { service: 'catalog', appPort: await catalogApp('catalog-a', () => true) }),
    startMeshSidecar(procs, cp, { service: 'catalog', appPort: await catalogApp('catalog-b', () => bHealthy) }),
  ]);
  await waitUntil(async () => new Set(await sample(10)).size === 2 || undefined, { what: 'frontend to reach both catalog instances', timeoutMs: 15_000 });
}, 90_000);

afterAll(async () => {
  await procs.killAll();
  await Promise.all(apps.map((u) => u.close()));
});

describe('built-in registry and sidecar readiness', () => {
  it('takes an instance whose app fails its health check out of the endpoints, and puts it back', async () => {
    expect([await health(a), await health(b)]).toEqual(['healthy', 'healthy']);
    bHealthy = false;
    await waitUntil(async () => (await health(b)) === 'critical' || undefined, { what: 'catalog-b listed critical', timeoutMs: 10_000 });
    expect(await health(a)).toBe('healthy');
    await waitUntil(async () => (await sample(10)).every((n) => n === 'catalog-a') || undefined, { what: 'all traffic on catalog-a', timeoutMs: 5_000 });

    bHealthy = true;
    await waitUntil(async () => (await health(b)) === 'healthy' || undefined, { what: 'catalog-b healthy again', timeoutMs: 10_000 });
    await waitUntil(async () => (await sample(10)).includes('catalog-b') || undefined, { what: 'traffic back on catalog-b', timeoutMs: 5_000 });
  });

  it('takes a draining instance out of the endpoints while it finishes', async () => {
    const drain = await fetch(`${a.adminUrl}/drain`, { method: 'POST' });
    expect(drain.status).toBe(202);
    await waitUntil(async () => (await health(a)) === 'critical' || undefined, { what: 'catalog-a listed critical', timeoutMs: 10_000 });
    await waitUntil(async () => (await sample(10)).every((n) => n === 'catalog-b') || undefined, { what: 'all traffic on catalog-b', timeoutMs: 5_000 });
  });
});
