/**
 * Two real sidecars, frontend calling catalog, on a scripted control plane
 * (scripted-control-plane.ts). It keeps no registry: its snapshots name the endpoints
 * themselves, from the sidecars' Hellos, with whatever routes the test gives.
 */
import { echoHandler, startUpstream, waitUntil, type Processes, type TestUpstream } from '../support/index.js';
import { get, startMeshSidecar, type MeshSidecar } from '../identity/mesh.js';
import type { ControlPlaneProcess } from './harness.js';
import { ScriptedControlPlane } from './scripted-control-plane.js';

export interface ScriptedMesh {
  readonly cp: ScriptedControlPlane;
  readonly frontend: MeshSidecar;
  /** The version last pushed. */
  readonly version: () => string;
  /** Pushes a snapshot of the sidecars' endpoints with `routes` under a new version, which it returns. */
  readonly push: (routes?: Record<string, unknown>) => string;
  readonly close: () => Promise<void>;
}

export async function startScriptedMesh(procs: Processes): Promise<ScriptedMesh> {
  let version = 0;
  const snapshot = (routes: Record<string, unknown>) => {
    const services: Record<string, { endpoints: { address: string; port: number; labels: Record<string, string> }[] }> = {};
    for (const h of cp.hellos) {
      services[h.service] ??= { endpoints: [] };
      services[h.service]!.endpoints.push({ address: h.address, port: h.inboundPort, labels: { version: h.version } });
    }
    return { services, routes };
  };
  const push = (routes: Record<string, unknown> = {}) => {
    const v = String(++version);
    cp.push(v, snapshot(routes));
    return v;
  };
  const cp = await ScriptedControlPlane.start(() => push());
  const apps: TestUpstream[] = [await startUpstream(echoHandler('catalog')), await startUpstream(echoHandler('frontend'))];
  const target = { grpcAddress: cp.grpcAddress, caFile: cp.caFile } as ControlPlaneProcess;
  await startMeshSidecar(procs, target, { service: 'catalog', appPort: apps[0]!.port, token: 'svc:catalog', listed: false });
  const frontend = await startMeshSidecar(procs, target, { service: 'frontend', appPort: apps[1]!.port, token: 'svc:frontend', listed: false });
  await waitUntil(async () => (await get(frontend, 'catalog')).status === 200, { what: 'frontend to reach catalog' });
  return {
    cp,
    frontend,
    version: () => String(version),
    push,
    close: async () => {
      await procs.killAll();
      await cp.close();
      await Promise.all(apps.map((a) => a.close()));
    },
  };
}
