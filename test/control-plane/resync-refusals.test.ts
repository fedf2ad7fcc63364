/**
 * Refusals that rest on the instance registry, after a real control-plane restart: until its
 * sidecars reconnect (the resync hold), a subset known only as its instances' `version` label is
 * not known yet, so a split or a rollout naming it is a 503 to try again (Retry-After; the CLI
 * exits 75 saying so), not the 422 it is once the hold is over. So is one made while Consul's
 * catalog has not been read since the start (`--consul` with Consul down).
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { ControlPlaneSource } from '../../sidecar/control-plane/source.js';
import { apiError, freePorts, Processes, skeinBin, waitUntil } from '../support/index.js';
import { ADMIN_TOKEN, announceInstance, startControlPlane } from './harness.js';

const procs = new Processes();
const sources: ControlPlaneSource[] = [];

afterAll(async () => {
  await Promise.all(sources.map((s) => s.close()));
  await procs.killAll();
});

const HOLD_S = 15;

describe('refusals that rest on the instance registry while it may be incomplete', () => {
  it('after a restart, during the resync hold, answer a split or rollout to subsets no instance has reconnected with yet 503 and Retry-After, and 422 once the hold is over', async () => {
    const first = await startControlPlane(procs);
    for (const version of ['v1', 'v2']) sources.push(await announceInstance(first, 'backend', version));
    await first.api.put('/api/v1/routes/backend/split', { v1: 90, v2: 10 });
    // The sidecars are gone when the control plane comes back: nothing announces v1 or v2 yet.
    await Promise.all(sources.splice(0).map((s) => s.close()));
    first.child.kill('SIGKILL');
    await first.child.exited;
    const cp = await startControlPlane(procs, { dataDir: first.dataDir, httpPort: first.httpPort, grpcPort: first.grpcPort, args: ['--resync-hold', `${HOLD_S}s`] });

    const cli = procs.spawn('skein split', process.execPath, [skeinBin, 'split', 'backend', 'v1=80', 'v2=20', '--control-plane', cp.adminUrl], { SKEIN_ADMIN_TOKEN: ADMIN_TOKEN });
    expect((await cli.exited).code, cli.output()).toBe(75);
    expect(cli.output()).toMatch(
      /^skein: 503 unavailable: not known yet: the control plane is still resyncing with its sidecars after its start, and the instances of those not reconnected yet are missing until its resync hold ends at \S+Z \(in \d+ s\): v1: unknown subset "v1" of backend: not declared in its policy and no instance has version=v1; v2: unknown subset "v2" of backend: .*; try again in \d+ s\n$/,
    );

    const split = await fetch(`${cp.adminUrl}/api/v1/routes/backend/split`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ v1: 80, v2: 20 }),
    });
    const body = (await split.json()) as { error: { code: string; problems: string[] } };
    expect(split.status).toBe(503);
    expect(Number(split.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(Number(split.headers.get('retry-after'))).toBeLessThanOrEqual(HOLD_S);
    expect(body.error.code).toBe('unavailable');
    expect(body.error.problems).toHaveLength(2);
    const canary = await apiError(cp.api.post('/api/v1/canaries/backend', { to: 'v2' }));
    expect({ status: canary.status, problems: canary.problems }).toEqual({
      status: 503,
      problems: ['to: unknown subset "v2" of backend: not declared in its policy and no instance has version=v2'],
    });
    expect((await cp.api.get('/api/v1/routes/backend')).body).toEqual([{ match: { pathPrefix: '/' }, split: { v1: 90, v2: 10 } }]);

    // A sidecar that reconnects makes its subset known, hold or not.
    sources.push(await announceInstance(cp, 'backend', 'v2'));
    const v2 = await apiError(cp.api.put('/api/v1/routes/backend/split', { v1: 80, v2: 20 }));
    expect({ status: v2.status, problems: v2.problems }).toEqual({ status: 503, problems: ['v1: unknown subset "v1" of backend: not declared in its policy and no instance has version=v1'] });
    expect((await cp.api.put('/api/v1/routes/backend/split', { v2: 100 })).status).toBe(200);

    // Once the hold is over, what no instance carries is refused for good.
    const after = await waitUntil(async () => {
      const err = await apiError(cp.api.put('/api/v1/routes/backend/split', { v1: 80, v2: 20 }));
      return err.status !== 503 && err;
    }, { what: 'the resync hold to end', timeoutMs: (HOLD_S + 10) * 1000, intervalMs: 250 });
    expect({ status: after.status, code: after.code, retryAfter: after.retryAfterSeconds }).toEqual({ status: 422, code: 'invalid', retryAfter: undefined });
  });

  it('answer 503 with Retry-After too while Consul\'s catalog has not been read since the start', async () => {
    // Nothing listens there: the catalog stays unread.
    const [consulPort] = await freePorts(1);
    const cp = await startControlPlane(procs, { args: ['--consul', `http://127.0.0.1:${consulPort}`] });
    const split = await apiError(cp.api.put('/api/v1/routes/backend/split', { v1: 100 }));
    expect({ status: split.status, code: split.code, problems: split.problems }).toEqual({
      status: 503,
      code: 'unavailable',
      problems: ['v1: unknown subset "v1" of backend: not declared in its policy and no instance has version=v1'],
    });
    expect(split.message).toMatch(new RegExp(`^not known yet: Consul's catalog at http://127\\.0\\.0\\.1:${consulPort} has not been read since the control plane started \\(.*\\), so no instance is known: v1: unknown subset`));
    expect(split.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(split.retryAfterSeconds).toBeLessThanOrEqual(5);
  });
});
