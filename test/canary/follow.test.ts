/**
 * `skein canary` following its rollout, end to end (a real control plane and CLI; the v2
 * instance is a sidecar's control-plane client run here): when its rollout is aborted and
 * another started between two of its polls, it says so and exits 1 instead of following the
 * other one's steps and reporting that one's result as its own; and through a pause and a
 * promotion by hand, which it reports and keeps following.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, announceInstance, startControlPlane, type ControlPlaneProcess } from '../control-plane/harness.js';
import { Processes, skeinBin, waitUntil } from '../support/index.js';

const procs = new Processes();
const sources: { close(): Promise<void> }[] = [];

afterAll(async () => {
  await Promise.all(sources.map((s) => s.close()));
  await procs.killAll();
});

describe('skein canary, following', () => {
  it('exits 1 saying its rollout was replaced when another starts between two polls', async () => {
    const cp = await startControlPlane(procs);
    await cp.api.put('/api/v1/services/backend/policy', { subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } } });
    sources.push(await announceInstance(cp, 'backend', 'v2'));

    // A poll that falls between the DELETE and the POST sees its own rollout aborted (and
    // rightly says so): that attempt proves nothing here, so it is tried again.
    for (let attempt = 1; ; attempt++) {
      const { exit, output, first, second } = await replacedWhileFollowing(cp);
      if (attempt < 5 && output.includes('aborted by an operator')) continue;
      expect(exit, output).toBe(1);
      expect(output).toContain(
        `skein: the canary rollout of backend started at ${first} ended unseen, most likely aborted, and was replaced by another (v1 → v2, started at ${second}, running); its own result is not known`,
      );
      expect(output).not.toMatch(/step 1 100%|rolled-back/);
      break;
    }
  }, 60_000);

  it('follows its rollout through a control-plane restart, saying so, and reports how it ended', async () => {
    const first = await startControlPlane(procs);
    await first.api.put('/api/v1/services/outage/policy', { subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } } });
    sources.push(await announceInstance(first, 'outage', 'v2'));
    const cli = procs.spawn('skein canary', process.execPath, [skeinBin, 'canary', 'outage', '--to', 'v2', '--interval', '10m', '--control-plane', first.adminUrl], { SKEIN_ADMIN_TOKEN: ADMIN_TOKEN });
    await waitUntil(() => cli.output().includes('rolling out v2'), { what: 'the CLI to follow its rollout' });
    first.child.kill('SIGKILL');
    await first.child.exited;
    await waitUntil(() => cli.output().includes('still following'), { what: 'the CLI to say it waits for the control plane' });
    expect(cli.hasExited, cli.output()).toBe(false);
    const second = await startControlPlane(procs, { dataDir: first.dataDir, httpPort: first.httpPort, grpcPort: first.grpcPort });
    await waitUntil(() => cli.output().includes('the control plane answers again'), { what: 'the CLI to see the control plane back' });
    expect((await second.api.delete('/api/v1/canaries/outage')).body).toMatchObject({ status: 'aborted' });
    const exit = await cli.exited;
    expect(exit.code, cli.output()).toBe(1);
    expect(cli.output()).toContain('canary of outage aborted');
    expect(cli.output()).not.toContain('its result is not known');
  }, 60_000);

  it('keeps following a rollout paused by hand, saying so, and takes a promotion to 100% as its success', async () => {
    const cp = await startControlPlane(procs);
    await cp.api.put('/api/v1/services/held/policy', { subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } } });
    sources.push(await announceInstance(cp, 'held', 'v2'));
    const cli = procs.spawn('skein canary', process.execPath, [skeinBin, 'canary', 'held', '--to', 'v2', '--steps', '25,100', '--interval', '10m', '--control-plane', cp.adminUrl], { SKEIN_ADMIN_TOKEN: ADMIN_TOKEN });
    await waitUntil(() => cli.output().includes('rolling out v2'), { what: 'the CLI to follow its rollout' });
    await cp.api.post('/api/v1/canaries/held/pause?reason=lunch', undefined);
    await waitUntil(() => /held: v1 → v2 paused at step 1\/2 \(25% v2\) since \S+: lunch\n/.test(cli.output()), { what: 'the CLI to say the rollout is paused' });
    expect(cli.hasExited, cli.output()).toBe(false);
    await cp.api.post('/api/v1/canaries/held/promote?full=true', undefined);
    const exit = await cli.exited;
    expect(exit.code, cli.output()).toBe(0);
    expect(cli.output()).toContain('held: v1 → v2 succeeded: promoted by an operator at step 1 of 2 (25% v2) to 100%, skipping its analysis\n');
  }, 60_000);
});

/** Starts `skein canary backend` and, once it follows its rollout, aborts that and starts another at once. */
async function replacedWhileFollowing(cp: ControlPlaneProcess): Promise<{ exit: number | null; output: string; first: string; second: string }> {
  const cli = procs.spawn('skein canary', process.execPath, [skeinBin, 'canary', 'backend', '--to', 'v2', '--interval', '10m', '--control-plane', cp.adminUrl], { SKEIN_ADMIN_TOKEN: ADMIN_TOKEN });
  await waitUntil(() => cli.output().includes('rolling out v2'), { what: 'the CLI to follow its rollout' });
  const first = (await cp.api.get<{ startedAt: string }>('/api/v1/canaries/backend')).body.startedAt;
  // Within one poll (500 ms), so the CLI's next GET shows the new rollout, which would roll
  // back at its first analysis (no traffic, no holds): an end the CLI must not take for its own.
  await cp.api.delete('/api/v1/canaries/backend');
  const second = (await cp.api.post<{ startedAt: string }>('/api/v1/canaries/backend', { to: 'v2', steps: [100], interval: '500ms', maxHolds: 0 })).body.startedAt;
  const exit = await cli.exited;
  await waitUntil(async () => (await cp.api.get<{ status: string }>('/api/v1/canaries/backend')).body.status !== 'running', { what: 'the second rollout to end' });
  return { exit: exit.code, output: cli.output(), first, second };
}
