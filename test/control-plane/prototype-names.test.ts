/**
 * Names that are also members of Object.prototype: `constructor` is a DNS label (a service
 * may be called so) and `toString` a subset name and version label. Looked up in a plain
 * object they found Object's own function: a sidecar announcing service `constructor` had
 * every sidecar of the mesh refuse every snapshot (NACK "list.map is not a function"), explain
 * answered 500, and a subset `toString` selected every instance. Real control plane, a real
 * sidecar for `web`, and instances announced by a sidecar's control-plane client run here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControlPlaneSource } from '../../sidecar/control-plane/source.js';
import { skeinCli, startMeshSidecar } from '../identity/mesh.js';
import { echoHandler, Processes, startUpstream, waitUntil, type TestUpstream } from '../support/index.js';
import { announceInstance, startControlPlane, type ControlPlaneProcess } from './harness.js';

const procs = new Processes();
const sources: ControlPlaneSource[] = [];
let app: TestUpstream;
let cp: ControlPlaneProcess;

interface ProxiesView {
  snapshotVersion: string;
  proxies: { service: string; state: string; ackedVersion: string | null; nackReason: string | null }[];
}

beforeAll(async () => {
  cp = await startControlPlane(procs);
  app = await startUpstream(echoHandler('web'));
  await startMeshSidecar(procs, cp, { service: 'web', appPort: app.port });
}, 60_000);

afterAll(async () => {
  await Promise.all(sources.map((s) => s.close()));
  await procs.killAll();
  await app.close();
});

describe('service and subset names that Object.prototype also has', () => {
  it('a service named constructor joins the mesh: every sidecar still takes the snapshots, explain and the listing see it as it is', async () => {
    sources.push(await announceInstance(cp, 'constructor', 'v1'));
    // A later change, so the snapshot the web sidecar answers last certainly holds `constructor`.
    await cp.api.put('/api/v1/routes/web/split', { v1: 100 });
    const synced = await waitUntil(async () => {
      const view = (await cp.api.get<ProxiesView>('/api/v1/proxies?service=web')).body;
      const web = view.proxies[0];
      return web && (web.state !== 'STALE' || web.nackReason !== null) ? { view, web } : undefined;
    }, { what: 'the web sidecar to answer the newest snapshot' });
    expect(synced.web, JSON.stringify(synced.view)).toMatchObject({ state: 'SYNCED', nackReason: null });

    const explained = await cp.api.get<{ known: boolean; matched?: { implicit: boolean }; split: { subset: string }[] }>('/api/v1/explain?service=constructor&path=/x');
    expect(explained.status).toBe(200);
    expect(explained.body).toMatchObject({ known: true, matched: { implicit: true }, split: [{ subset: '*' }] });
    // Header names are HTTP tokens: `constructor` and `__proto__` are two.
    const withHeaders = await cp.api.get<{ request: { headers: Record<string, string> } }>('/api/v1/explain?service=constructor&header=constructor:a&header=__proto__:b&header=Constructor:c');
    expect(withHeaders.status).toBe(200);
    expect(Object.entries(withHeaders.body.request.headers)).toEqual([['constructor', 'a, c'], ['__proto__', 'b']]);
    const listed = await cp.api.get<{ hasPolicy: boolean; hasRoutes: boolean }>('/api/v1/services/constructor');
    expect(listed.body).toMatchObject({ hasPolicy: false, hasRoutes: false });
  }, 30_000);

  it('a split onto a subset named toString (skein split) sends its share to the instances with version=toString only', async () => {
    sources.push(await announceInstance(cp, 'backend', 'v1'), await announceInstance(cp, 'backend', 'toString'));
    // Through the CLI, which took `toString=50` for a subset given twice.
    const cli = await skeinCli(procs, cp, ['split', 'backend', 'v1=50', 'toString=50']);
    expect(cli.code, cli.output).toBe(0);
    const explained = await cp.api.get<{ split: { subset: string; selector: Record<string, string>; endpoints: { labels: Record<string, string> }[] }[] }>('/api/v1/explain?service=backend');
    const toString = explained.body.split.find((s) => s.subset === 'toString');
    expect(toString?.selector).toEqual({ version: 'toString' });
    expect(toString?.endpoints.map((e) => e.labels.version)).toEqual(['toString']);
  }, 30_000);
});
