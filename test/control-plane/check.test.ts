/** `skein check` against a real control plane with a real sidecar connected: all √, a warning, a dead control plane. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, parseSnapshot } from '../../common/config/parse.js';
import { skeinCli, startMeshSidecar, type MeshSidecar } from '../identity/mesh.js';
import { Processes, skeinBin, startUpstream, waitUntil, type TestUpstream } from '../support/index.js';
import { createToken, startControlPlane, testSource, type ControlPlaneProcess } from './harness.js';

const procs = new Processes();
let cp: ControlPlaneProcess;
let app: TestUpstream;
let sidecar: MeshSidecar;

beforeAll(async () => {
  cp = await startControlPlane(procs, { args: ['--resync-hold', '0s'] });
  app = await startUpstream();
  sidecar = await startMeshSidecar(procs, cp, { service: 'web', appPort: app.port });
}, 60_000);

afterAll(async () => {
  await procs.killAll();
  await app.close();
});

describe('skein check', () => {
  it('passes every check of a mesh with a sidecar on the current snapshot and deny-by-default intentions (exit 0)', async () => {
    expect((await skeinCli(procs, cp, ['intention', 'default', 'deny'])).code).toBe(0);
    const { code, output } = await skeinCli(procs, cp, ['check']);
    expect(output).not.toMatch(/^[‼×]/m);
    expect(output).toContain(`√ control plane answers at ${cp.adminUrl} (Skein control plane `);
    expect(output).toContain('√ admin token accepted for writes');
    expect(output).toMatch(/^√ CA root .* of skein\.local valid until /m);
    expect(output).toContain('√ 1 sidecar of 1 service connected');
    expect(output).toMatch(/^√ every connected sidecar runs snapshot \d+$/m);
    expect(output).toContain('√ workload certificates of 1 sidecar renewed in time');
    expect(output).toContain('√ intentions deny by default (0 rules)');
    expect(output.endsWith('\nStatus check results are √\n')).toBe(true);
    expect(code).toBe(0);
  });

  it('warns of intentions that allow by default, and still exits 0; -o json says the same', async () => {
    expect((await skeinCli(procs, cp, ['intention', 'default', 'allow'])).code).toBe(0);
    const text = await skeinCli(procs, cp, ['check']);
    expect(text.output).toMatch(/^‼ intentions allow by default: .*\n {4}hint: .*skein intention default deny/m);
    expect(text.output.endsWith('\nStatus check results are √ (1 warning)\n')).toBe(true);
    expect(text.code).toBe(0);
    const json = await skeinCli(procs, cp, ['check', '-o', 'json']);
    const report = JSON.parse(json.output) as { status: string; checks: { name: string; group: string; status: string }[] };
    expect(report.status).toBe('warning');
    expect(report.checks.filter((c) => c.status !== 'ok')).toEqual([expect.objectContaining({ name: 'intentions-default', group: 'config', status: 'warning' })]);
    expect(json.code).toBe(0);
  });

  it('fails while a sidecar NACKs the current snapshot, naming it and its reason (exit 1)', async () => {
    // A sidecar's own control-plane client, in this process, refusing one timeout as a sidecar refuses a snapshot it cannot run.
    const source = testSource(cp, { service: 'reviews', instanceId: 'reviews-1', token: await createToken(cp, 'reviews') });
    void source.start((raw) => {
      if (parseSnapshot(raw).services.reviews?.timeout === 7_000) throw new ConfigError(['services.reviews.timeout: 7s is not allowed here']);
    });
    try {
      await cp.api.put('/api/v1/services/reviews/policy', { timeout: '7s' });
      await waitUntil(async () => (await cp.api.get<{ proxies: { instance: string; state: string }[] }>('/api/v1/proxies')).body.proxies.some((p) => p.instance === 'reviews-1' && p.state === 'NACKED'), { what: 'reviews-1 NACKED' });
      const { code, output } = await skeinCli(procs, cp, ['check']);
      // Versions are not pinned: a later snapshot (the instance's health) may be the current one by now.
      expect(output).toMatch(/^× config has not converged on snapshot \d+: 1 sidecar NACKed\n {4}reviews-1 \(reviews\) NACKed snapshot \d+: services\.reviews\.timeout: 7s is not allowed here\n {4}hint: /m);
      expect(output).toMatch(/\nStatus check results are × \(1 failure, \d+ warnings?\)\n$/);
      expect(code).toBe(1);
    } finally {
      await source.close();
      await cp.api.delete('/api/v1/services/reviews/policy');
    }
  });

  it("fails when pointed at a sidecar's admin port, saying so (exit 1), and checks nothing more", async () => {
    const child = procs.spawn('skein check (sidecar)', process.execPath, [skeinBin, 'check', '--control-plane', sidecar.adminUrl]);
    const { code } = await child.exited;
    expect(child.output()).toMatch(new RegExp(`^× ${sidecar.adminUrl} is a Skein sidecar's admin port, not a Skein control plane's admin API`, 'm'));
    expect(child.output()).not.toMatch(/\n\s+at /);
    expect(child.output()).not.toContain('certificates');
    expect(code).toBe(1);
  });

  it('fails, naming the URL, when the control plane is gone (exit 1)', async () => {
    cp.child.kill('SIGKILL');
    await cp.child.exited;
    const { code, output } = await skeinCli(procs, cp, ['check']);
    expect(output).toMatch(new RegExp(`^× cannot reach the control plane at ${cp.adminUrl}: ECONNREFUSED`, 'm'));
    expect(output).not.toMatch(/\n\s+at /);
    expect(output.endsWith('\nStatus check results are × (1 failure)\n')).toBe(true);
    expect(code).toBe(1);
  });
});
