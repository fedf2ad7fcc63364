/**
 * A snapshot a sidecar refuses: it answers NACK with the exact reason, keeps serving on its
 * last good snapshot, and ACKs the next good one. The snapshots come from a scripted
 * control plane (scripted-control-plane.ts), since the real one never composes an invalid one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Processes, waitUntil } from '../support/index.js';
import { get } from '../identity/mesh.js';
import { startScriptedMesh, type ScriptedMesh } from './scripted-mesh.js';

const procs = new Processes();
let mesh: ScriptedMesh;

beforeAll(async () => {
  mesh = await startScriptedMesh(procs);
}, 60_000);

afterAll(() => mesh?.close());

describe('NACK', () => {
  it('a refused snapshot is NACKed with its reason and traffic keeps flowing on the old one', async () => {
    const { cp, frontend } = mesh;
    const good = mesh.version();
    const bad = mesh.push({ catalog: [{ split: { v1: 50 } }] });
    await waitUntil(() => cp.nacks.filter((n) => n.version === bad).length === 2, { what: 'both sidecars to NACK' });
    for (const nack of cp.nacks) expect(nack.reason).toMatch(/routes\.catalog\[0\]\.split: weights must sum to 100/);
    expect(cp.acks.some((a) => a.version === bad)).toBe(false);

    for (let i = 0; i < 20; i++) expect((await get(frontend, 'catalog')).status).toBe(200);
    const config = (await (await fetch(`${frontend.adminUrl}/config`)).json()) as { version: string };
    expect(config.version).toBe(good);
    expect((await fetch(`${frontend.adminUrl}/ready`)).status).toBe(200);

    const next = mesh.push({ catalog: [{ split: { v1: 100 } }] });
    await waitUntil(() => cp.acks.filter((a) => a.version === next).length === 2, { what: 'both sidecars to ACK the next good snapshot' });
    expect((await get(frontend, 'catalog')).status).toBe(200);
  });
});
