/**
 * A control plane that stops reading its push streams (busy, or stalled) while traffic goes
 * on: the sidecars must drop telemetry (spans counted in skein_spans_dropped_total) rather
 * than queue it on the stream without bound, and the stream must stay usable.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { Processes, waitUntil } from '../support/index.js';
import { startScriptedMesh, type ScriptedMesh } from '../control-plane/scripted-mesh.js';
import { metric, scrape } from '../sidecar/resilience-fixture.js';

const procs = new Processes();
let mesh: ScriptedMesh;

beforeAll(async () => {
  mesh = await startScriptedMesh(procs);
}, 60_000);

afterAll(() => mesh?.close());

describe('telemetry on a push stream the control plane does not read', () => {
  it('is dropped and counted, not queued without bound, and the stream stays up', async () => {
    const { cp, frontend } = mesh;
    cp.pauseReading();
    // Long paths make big spans: a few thousand requests are far more than HTTP/2's windows hold.
    const path = `/items/${'x'.repeat(2000)}`;
    let sent = 0;
    let dropped = 0;
    const deadline = Date.now() + 60_000;
    while (dropped === 0) {
      if (Date.now() > deadline) throw new Error(`no span dropped after ${sent} requests while the control plane read nothing`);
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          for (let i = 0; i < 50; i++) {
            const res = await request(`${frontend.outboundUrl}${path}`, { headers: { host: 'catalog' } });
            await res.body.dump();
            expect(res.statusCode).toBe(200);
            sent++;
          }
        }),
      );
      dropped = metric(await scrape(frontend), 'skein_spans_dropped_total');
    }
    expect(dropped).toBeGreaterThan(0);

    // Once the control plane reads again, the stream carries a new snapshot and its ACK.
    cp.pauseReading(false);
    const next = mesh.push();
    await waitUntil(() => cp.acks.filter((a) => a.version === next).length === 2, { what: 'both sidecars to ACK after the stall', timeoutMs: 30_000 });
  });
});
