/**
 * A write that would make the snapshot larger than the 64 MiB a sidecar takes in one message
 * on the push stream is refused (413) with nothing stored, against a real control plane:
 * past that size every sidecar's stream would fail and reconnect in a loop. Route rule names
 * of random base64 make the size cheaply: gzip, which the snapshot is pushed in, keeps
 * about three quarters of them.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AdminApiError } from '../../cli/admin-client.js';
import { Processes } from '../support/index.js';
import { startControlPlane, type ControlPlaneProcess } from './harness.js';

const procs = new Processes();
let cp: ControlPlaneProcess;

beforeAll(async () => {
  cp = await startControlPlane(procs, { args: ['--max-body', '64MiB'] });
});
afterAll(() => procs.killAll());

/** One rule whose name is `mib` MiB of random base64 (~0.76 of it once gzipped). */
const bigRoutes = (mib: number) => [{ name: randomBytes((mib * 2 ** 20 * 3) / 4).toString('base64') }];

describe('snapshot size', () => {
  it('refuses a write that would take the snapshot past 64 MiB on the push stream, storing nothing', { timeout: 120_000 }, async () => {
    const first = bigRoutes(46);
    await cp.api.put('/api/v1/routes/big1', first);
    const before = (await cp.api.get<{ version: string }>('/api/v1/snapshot')).body.version;

    const refused = (await cp.api.put('/api/v1/routes/big2', bigRoutes(46)).catch((err: unknown) => err)) as AdminApiError;
    expect(refused.status).toBe(413);
    expect(refused.code).toBe('payload-too-large');
    const m = /^this write would make the snapshot [\d.]+ MiB \((\d+) bytes\) on the push stream, more than the 64 MiB \(67108864 bytes\) a sidecar takes in one message; nothing was written$/.exec(refused.message);
    expect(m, refused.message).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(64 * 2 ** 20);

    // Nothing of it stored or published; the config before it stays, and later writes go on.
    expect(await cp.api.get('/api/v1/routes/big2').catch((err: AdminApiError) => err.status)).toBe(404);
    expect((await cp.api.get<{ name: string }[]>('/api/v1/routes/big1')).body[0]!.name).toBe(first[0]!.name);
    expect((await cp.api.get<{ version: string }>('/api/v1/snapshot')).body.version).toBe(before);
    const small = await cp.api.put('/api/v1/services/orders/policy', { timeout: '2s' });
    expect(small.headers.get('skein-published')).toBeNull();
    expect(Number(small.headers.get('skein-snapshot-version'))).toBeGreaterThan(Number(before));
  });
});
