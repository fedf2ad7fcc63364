/**
 * SIGHUP does not end a control plane or a control-plane-mode sidecar (Node's default for
 * it would, exit 129 with no drain): each logs that there is nothing to reload and keeps
 * serving. A bootstrap token with a trailing newline (a Kubernetes Secret made from a file)
 * is trimmed by the sidecar, so the CSR is signed.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startMeshSidecar } from '../identity/mesh.js';
import { Processes, startUpstream, waitUntil, type TestUpstream } from '../support/index.js';
import { createToken, startControlPlane } from './harness.js';

describe('SIGHUP in control-plane mode', () => {
  const procs = new Processes();
  const upstreams: TestUpstream[] = [];
  afterAll(async () => {
    await procs.killAll();
    await Promise.all(upstreams.map((u) => u.close()));
  });

  it('is logged and ignored by the control plane and by a sidecar (whose newline-ended token was trimmed)', async () => {
    const cp = await startControlPlane(procs);
    const app = await startUpstream();
    upstreams.push(app);
    const token = `${await createToken(cp, 'orders')}\n`;
    const sc = await startMeshSidecar(procs, cp, { service: 'orders', appPort: app.port, token });

    cp.child.kill('SIGHUP');
    sc.child.kill('SIGHUP');
    await waitUntil(() => cp.child.output().includes('SIGHUP: nothing to reload'), { what: `the control plane to log the SIGHUP:\n${cp.child.output()}` });
    await waitUntil(() => sc.child.output().includes('SIGHUP: nothing to reload, the config and certificates come from the control plane'), { what: `the sidecar to log the SIGHUP:\n${sc.child.output()}` });
    expect(cp.child.hasExited).toBe(false);
    expect(sc.child.hasExited).toBe(false);
    expect((await fetch(`${cp.adminUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${sc.adminUrl}/ready`)).status).toBe(200);

    // Still the ordinary way out: SIGTERM drains and exits 0.
    sc.child.kill('SIGTERM');
    expect(await sc.child.exited).toEqual({ code: 0, signal: null });
    cp.child.kill('SIGTERM');
    expect(await cp.child.exited).toEqual({ code: 0, signal: null });
  });
});
