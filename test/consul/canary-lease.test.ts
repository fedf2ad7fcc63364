/**
 * Canary rollouts with several control-plane replicas on Consul KV: the replica holding the
 * lease (a Consul lock on skein/leases/canary-driver) drives every rollout; the others answer
 * GETs from the store, send actions to the driver by name, and one of them takes over when the
 * driver stops (at once) or dies (once its session expires). No sidecars: the subsets are
 * instances registered in Consul, and without traffic every analysis is a hold.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { CanaryState } from '../../control-plane/canary/controller.js';
import { startControlPlane, type ControlPlaneProcess } from '../control-plane/harness.js';
import { apiError, Processes, waitUntil } from '../support/index.js';
import { startConsul, type ConsulAgent } from '../support/consul.js';
import { consulTeardown } from './fixture.js';

const TOOK = 'took the canary driver lease';
const ROLLOUT = { to: 'v2', steps: [20, 100], interval: '1s', maxHolds: 100 };

describe('canary rollouts with two control-plane replicas on Consul KV', { timeout: 120_000 }, () => {
  let consul: ConsulAgent;
  const procs = new Processes();

  beforeAll(async () => {
    consul = await startConsul();
  }, 60_000);
  consulTeardown(procs, [], () => consul);

  const replica = () => startControlPlane(procs, { args: ['--consul', consul.url, '--store', 'consul'] });
  const canary = async (cp: ControlPlaneProcess) => (await cp.api.get<CanaryState>('/api/v1/canaries/backend')).body;
  const took = (cp: ControlPlaneProcess) => cp.child.output().includes(TOOK);
  const resumed = (cp: ControlPlaneProcess) => cp.child.output().split('\n').filter((l) => l.includes('"resuming canary rollout"')).length;

  /** backend v1 and v2 in Consul's catalog (no check: passing), and two replicas, `first` the driver. */
  async function mesh(): Promise<{ first: ControlPlaneProcess; second: ControlPlaneProcess }> {
    for (const version of ['v1', 'v2']) await consul.put('/agent/service/register', { ID: `backend-${version}`, Name: 'backend', Address: '127.0.0.1', Port: 9, Meta: { version } });
    const first = await replica();
    await waitUntil(() => took(first), { timeoutMs: 10_000, what: 'the first replica to take the lease' });
    const second = await replica();
    return { first, second };
  }

  it('one replica drives them: the other shows their state, names the driver to actions, and takes over at once when it stops', async () => {
    const { first, second } = await mesh();
    expect((await first.api.post('/api/v1/canaries/backend', ROLLOUT)).status).toBe(201);
    await waitUntil(async () => (await canary(first)).analyses.length >= 1, { timeoutMs: 10_000, what: 'a first analysis' });
    // The follower reads the rollout from the store: it was started after the follower loaded.
    const followed = await waitUntil(async () => {
      const s = await canary(second).catch(() => undefined);
      return s && s.analyses.length >= 1 ? s : undefined;
    }, { timeoutMs: 10_000, what: "the follower to show the driver's analyses" });
    expect(followed).toMatchObject({ status: 'running', step: 0, weight: 20 });

    // Actions sent to the follower are refused naming the driver; a second start there would
    // have overwritten the running rollout's state and run a second loop.
    for (const action of [
      () => second.api.post('/api/v1/canaries/backend', ROLLOUT),
      () => second.api.post('/api/v1/canaries/backend/pause', {}),
      () => second.api.delete('/api/v1/canaries/backend'),
    ]) {
      const refused = await apiError(action());
      expect(refused.status).toBe(409);
      expect(refused.message).toContain(`driven by the control-plane replica at ${first.adminUrl}`);
    }
    expect(took(second)).toBe(false);
    expect(resumed(second)).toBe(0);

    // A clean stop releases the lease: the follower takes it at once and drives the rollout on.
    first.child.kill('SIGTERM');
    await first.child.exited;
    await waitUntil(() => took(second), { timeoutMs: 10_000, what: 'the follower to take the lease' });
    // Logged as it takes the lease, before it reads and resumes the rollouts.
    await waitUntil(() => resumed(second) === 1, { timeoutMs: 10_000, what: 'the new driver to resume the rollout' });
    const before = (await canary(second)).analyses.length;
    await waitUntil(async () => (await canary(second)).analyses.length > before, { timeoutMs: 10_000, what: 'an analysis by the new driver' });
    expect((await second.api.post<CanaryState>('/api/v1/canaries/backend/pause?reason=handover', {})).body).toMatchObject({ status: 'running', paused: { reason: 'handover' } });
  });

  it('a driver that dies is replaced once its Consul session expires, and the rollout goes on', async () => {
    const { first, second } = await mesh();
    expect((await first.api.post('/api/v1/canaries/backend', ROLLOUT)).status).toBe(201);
    first.child.kill('SIGKILL');
    await first.child.exited;
    // Consul ends an unrenewed session 10-20 s after its last renewal, and the lock waits out its
    // 8 s lock delay after that.
    await waitUntil(() => took(second), { timeoutMs: 45_000, what: 'the follower to take the lease from the dead driver' });
    await waitUntil(async () => (await canary(second)).analyses.length >= 1, { timeoutMs: 10_000, what: 'an analysis by the new driver' });
    expect(resumed(second)).toBe(1);
  });

  it('restarted together, only one of them resumes a running rollout', async () => {
    const { first, second } = await mesh();
    expect((await first.api.post('/api/v1/canaries/backend', ROLLOUT)).status).toBe(201);
    for (const cp of [second, first]) {
      cp.child.kill('SIGTERM');
      await cp.child.exited;
    }
    const again = await Promise.all([replica(), replica()]);
    await waitUntil(() => again.some(took), { timeoutMs: 10_000, what: 'one replica to take the lease' });
    const driver = again.find(took)!;
    await waitUntil(async () => (await canary(driver)).analyses.length >= 1, { timeoutMs: 10_000, what: 'an analysis after the restart' });
    expect(again.map(resumed).sort()).toEqual([0, 1]);
    expect(again.filter(took)).toHaveLength(1);
  });
});
