/**
 * A rollout's state lives in the store: a control plane killed mid-rollout and started again
 * on the same data dir resumes it at the same step (its split set again, its window from when
 * held-back sidecars are sent it) and keeps analysing, and a step that never gets enough
 * requests is rolled back after its holds. No sidecars: the subsets are declared in the
 * policy, v2's instance is a sidecar's control-plane client run here (a rollout needs a
 * healthy one), and without traffic every analysis is a hold.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CanaryState } from '../../control-plane/canary/controller.js';
import { announceInstance, startControlPlane, type ControlPlaneProcess } from '../control-plane/harness.js';
import { apiError, Processes, waitUntil } from '../support/index.js';

const procs = new Processes();
const instances: { close(): Promise<void> }[] = [];

afterAll(async () => {
  await Promise.all(instances.map((i) => i.close()));
  await procs.killAll();
});

const canary = async (cp: ControlPlaneProcess, service: string) => (await cp.api.get<CanaryState>(`/api/v1/canaries/${service}`)).body;
const split = async (cp: ControlPlaneProcess, service: string) => (await cp.api.get<{ split?: Record<string, number> }[]>(`/api/v1/routes/${service}`)).body.at(-1)!.split;

async function withSubsets(cp: ControlPlaneProcess, service: string): Promise<void> {
  await cp.api.put(`/api/v1/services/${service}/policy`, { subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } } });
  instances.push(await announceInstance(cp, service, 'v2'));
}

describe('canary state', () => {
  it('survives a control-plane crash and resumes at the same step, setting its split again, its window from the end of the resync hold', async () => {
    const first = await startControlPlane(procs);
    await withSubsets(first, 'backend');
    await first.api.post('/api/v1/canaries/backend', { to: 'v2', steps: [20, 100], interval: '1s', maxHolds: 100 });
    await waitUntil(async () => (await canary(first, 'backend')).analyses.length >= 1, { timeoutMs: 10_000, what: 'a first analysis' });
    first.child.kill('SIGKILL');
    await first.child.exited;
    // Edited while stopped (or left a step ahead by a crash between a split and its saved state):
    // the resumed rollout sets its own step's split again rather than judge it on this one.
    const file = join(first.dataDir, 'store.json');
    const stored = JSON.parse(readFileSync(file, 'utf8')) as { entries: Record<string, { value: { split?: Record<string, number> }[] }> };
    stored.entries['routes/backend']!.value.at(-1)!.split = { v2: 100 };
    writeFileSync(file, JSON.stringify(stored));

    const second = await startControlPlane(procs, { dataDir: first.dataDir, httpPort: first.httpPort, grpcPort: first.grpcPort });
    const up = Date.now();
    const resumed = await canary(second, 'backend');
    expect(resumed).toMatchObject({ status: 'running', step: 0, weight: 20 });
    expect(await split(second, 'backend')).toEqual({ v1: 80, v2: 20 });
    const before = resumed.analyses.length;
    const later = await waitUntil(async () => {
      const s = await canary(second, 'backend');
      return s.analyses.length > before ? s : undefined;
    }, { timeoutMs: 10_000, what: 'an analysis after the restart' });
    expect(later.analyses.at(-1)).toMatchObject({ decision: 'hold', reason: '0 requests to v2, fewer than minRequests 20' });
    // The v2 instance reconnected running a snapshot, so it was held back for --resync-hold
    // (2s, started before the admin API answered): the resumed step's window starts after that.
    expect(Date.parse(later.analyses.at(-1)!.windowStart)).toBeGreaterThanOrEqual(up);
    expect((await second.api.delete('/api/v1/canaries/backend')).body).toMatchObject({ status: 'aborted' });
    expect(await split(second, 'backend')).toEqual({ v1: 100 });
  }, 60_000);

  it('resumes a rollout between subsets only its instances name (no policy) once they reconnect, instead of rolling it back', async () => {
    // `skein split` and rollouts need no declared subsets: an instance's version label is one.
    // After a crash the built-in registry is empty until sidecars reconnect, during the resync hold.
    const first = await startControlPlane(procs);
    instances.push(await announceInstance(first, 'plain', 'v1'), await announceInstance(first, 'plain', 'v2'));
    await first.api.post('/api/v1/canaries/plain', { to: 'v2', steps: [20, 100], interval: '1s', maxHolds: 100 });
    first.child.kill('SIGKILL');
    await first.child.exited;

    const second = await startControlPlane(procs, { dataDir: first.dataDir, httpPort: first.httpPort, grpcPort: first.grpcPort });
    const up = Date.now();
    // Past the hold (2s), an analysis of the resumed step: the rollout was not rolled back.
    const later = await waitUntil(async () => {
      const s = await canary(second, 'plain');
      return s.status !== 'running' || s.analyses.some((a) => Date.parse(a.windowStart) >= up) ? s : undefined;
    }, { timeoutMs: 15_000, what: 'an analysis after the restart, or the end of the rollout' });
    expect(later, JSON.stringify(later)).toMatchObject({ status: 'running', step: 0, weight: 20 });
    expect(await split(second, 'plain')).toEqual({ v1: 80, v2: 20 });
    expect((await second.api.delete('/api/v1/canaries/plain')).body).toMatchObject({ status: 'aborted' });
    expect(await split(second, 'plain')).toEqual({ v1: 100 });
  }, 60_000);

  it('keeps a paused rollout paused across a crash (its split set again); resumed there, it is analysed again', async () => {
    const first = await startControlPlane(procs);
    await withSubsets(first, 'frozen');
    await first.api.post('/api/v1/canaries/frozen', { to: 'v2', steps: [20, 100], interval: '1s', maxHolds: 100 });
    expect((await first.api.post<CanaryState>('/api/v1/canaries/frozen/pause?reason=change%20freeze', undefined)).body).toMatchObject({ paused: { reason: 'change freeze' } });
    first.child.kill('SIGKILL');
    await first.child.exited;

    const second = await startControlPlane(procs, { dataDir: first.dataDir, httpPort: first.httpPort, grpcPort: first.grpcPort });
    expect(await canary(second, 'frozen')).toMatchObject({ status: 'running', step: 0, weight: 20, paused: { reason: 'change freeze' }, analyses: [] });
    expect(await split(second, 'frozen')).toEqual({ v1: 80, v2: 20 });
    expect((await apiError(second.api.put('/api/v1/routes/frozen/split', { v1: 100 }))).status).toBe(409);
    const resumed = (await second.api.post<CanaryState>('/api/v1/canaries/frozen/resume', undefined)).body;
    expect(resumed.paused).toBeUndefined();
    const judged = await waitUntil(async () => {
      const s = await canary(second, 'frozen');
      return s.analyses.length > 0 ? s : undefined;
    }, { timeoutMs: 15_000, what: 'an analysis after the resume' });
    expect(judged.analyses[0]).toMatchObject({ step: 0, decision: 'hold' });
    // A fresh window: from the resume (or the end of the resync hold, if that came later).
    expect(Date.parse(judged.analyses[0]!.windowStart)).toBeGreaterThanOrEqual(Date.parse(resumed.stepStartedAt));
    expect((await second.api.delete('/api/v1/canaries/frozen')).body).toMatchObject({ status: 'aborted' });
  }, 60_000);

  it('rolls back a step that never gets enough requests once its holds are used up', async () => {
    const cp = await startControlPlane(procs);
    await withSubsets(cp, 'quiet');
    await cp.api.post('/api/v1/canaries/quiet', { to: 'v2', steps: [10, 100], interval: '500ms', maxHolds: 1 });
    const done = await waitUntil(async () => {
      const s = await canary(cp, 'quiet');
      return s.status !== 'running' ? s : undefined;
    }, { timeoutMs: 10_000, what: 'the rollout to end' });
    expect(done.status).toBe('rolled-back');
    expect(done.reason).toBe('0 requests to v2, fewer than minRequests 20 after 1 extra intervals');
    expect(done.analyses.map((a) => a.decision)).toEqual(['hold', 'rollback']);
    expect(await split(cp, 'quiet')).toEqual({ v1: 100 });
  }, 60_000);
});
