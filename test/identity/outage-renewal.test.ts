/**
 * A control-plane outage longer than the sidecars' leaf lifetime, with real processes. While
 * the control plane is away both leaves expire (requests go on over the mTLS connection the
 * caller already holds). When it comes back on the same data dir and port, each sidecar must
 * renew as soon as its stream is up again, so that a sidecar that renewed first does not dial
 * a peer still holding an expired leaf for long: calls recover within about a second.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlaneProcess } from '../control-plane/harness.js';
import { canConnect } from '../../demo/instance.js';
import { Processes, waitUntil, type TestUpstream } from '../support/index.js';
import { startGatewayAndOrders } from './gateway-orders.js';
import { get, metricValue, type MeshSidecar } from './mesh.js';

/** Short leaves, so that an outage outlives them within a few seconds. */
const CP_ARGS = ['--cert-ttl', '4s'];
/** How soon after the control plane's return every sidecar must hold a fresh leaf, and calls succeed again (about a second, with room for a busy machine). */
const RECOVERY_MS = 3_000;
/** The outage lasts until each sidecar's renewal has backed off to a retry at least this far away. */
const BACKED_OFF_MS = 8_000;

const procs = new Processes();
const apps: TestUpstream[] = [];
let cp: ControlPlaneProcess;
let gateway: MeshSidecar;
let orders: MeshSidecar;

beforeAll(async () => {
  ({ cp, gateway, orders } = await startGatewayAndOrders(procs, apps, CP_ARGS));
}, 90_000);

afterAll(async () => {
  await procs.killAll();
  await Promise.all(apps.map((a) => a.close()));
});

/** The sidecar's leaf expiry (ms since the epoch), from `skein_cert_expiry_timestamp_seconds`. */
const expiryMs = async (s: MeshSidecar) => (await metricValue(s, /^skein_cert_expiry_timestamp_seconds /))! * 1000;

/** Whether `output` logs a failed certificate request whose next try is at least `ms` away. */
function backedOff(output: string, ms: number): boolean {
  return output.split('\n').some((line) => {
    if (!line.includes('certificate request failed')) return false;
    return (JSON.parse(line) as { retryInMs: number }).retryInMs >= ms;
  });
}

/** Request loops gateway → orders, keeping the time and outcome of every failure. */
function timedLoad(concurrency = 2) {
  let running = true;
  let ok = 0;
  const failures: { at: number; what: string }[] = [];
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) {
      try {
        const r = await get(gateway, 'orders', '/load');
        if (r.status === 200) ok++;
        else failures.push({ at: Date.now(), what: `${r.status} ${r.reason ?? ''}` });
      } catch (err) {
        failures.push({ at: Date.now(), what: (err as Error).message });
      }
    }
  });
  return {
    get ok() {
      return ok;
    },
    failures,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

describe('a control-plane outage that outlives the leaves', () => {
  it('renews every sidecar within about a second of the control plane coming back, and calls recover', async () => {
    const load = timedLoad();
    await waitUntil(() => load.ok > 20, { what: 'load to flow' });

    const logged = [gateway, orders].map((s) => s.child.output().length);
    cp.child.kill('SIGKILL');
    await cp.child.exited;
    // A long outage, as the sidecars see it: both leaves expired and both renewals backed off
    // to a retry further away than the recovery this test asks for.
    await waitUntil(async () => (await expiryMs(gateway)) < Date.now() && (await expiryMs(orders)) < Date.now(), { what: 'both leaves to expire', timeoutMs: 15_000, intervalMs: 100 });
    await waitUntil(() => [gateway, orders].every((s, i) => backedOff(s.child.output().slice(logged[i]), BACKED_OFF_MS)), { what: `both renewals to back off to ${BACKED_OFF_MS} ms`, timeoutMs: 30_000, intervalMs: 100 });
    const okInOutage = load.ok;
    // The callers' open connections outlive the leaves: serving goes on during the outage.
    await waitUntil(() => load.ok > okInOutage + 20, { what: 'requests to go on with expired leaves' });
    const outageFailures = load.failures.length;

    const port = cp.grpcPort;
    const back = waitUntil(() => canConnect(port), { what: 'the gRPC port to accept again', timeoutMs: 60_000, intervalMs: 10 }).then(() => Date.now());
    cp = await startControlPlane(procs, { dataDir: cp.dataDir, httpPort: cp.httpPort, grpcPort: cp.grpcPort, args: CP_ARGS });
    const backAt = await back;

    const renewedAfter = await Promise.all(
      [gateway, orders].map((s) =>
        waitUntil(async () => (await expiryMs(s)) > Date.now() && Math.max(1, Date.now() - backAt), { what: `${s.service} to hold a fresh leaf`, timeoutMs: 60_000, intervalMs: 20 }),
      ),
    );
    // Calls succeed again: a run of successes after the last failure.
    await waitUntil(
      () => {
        const last = load.failures.at(-1)?.at ?? 0;
        return Date.now() - Math.max(last, backAt) > 1_000 && load.ok > okInOutage + 100;
      },
      { what: 'calls to succeed for a second in a row', timeoutMs: 60_000 },
    );
    await load.stop();

    const after = load.failures.slice(outageFailures);
    const lastFailureAfter = after.length ? Math.max(...after.map((f) => f.at)) - backAt : 0;
    const counts = new Map<string, number>();
    for (const f of after) counts.set(f.what, (counts.get(f.what) ?? 0) + 1);
    const reasons = [...counts].map(([what, n]) => `${n} × ${what}`);
    console.info(
      `control plane back: fresh leaf after gateway ${renewedAfter[0]} ms, orders ${renewedAfter[1]} ms; ` +
        `failures during the outage ${outageFailures}, after the return ${after.length} (last at +${lastFailureAfter} ms: ${reasons.join(', ') || 'none'}); ${load.ok} ok in all`,
    );
    expect(outageFailures, load.failures.map((f) => f.what).join('\n')).toBe(0);
    for (const ms of renewedAfter) expect(ms).toBeLessThan(RECOVERY_MS);
    expect(lastFailureAfter, reasons.join('\n')).toBeLessThan(RECOVERY_MS);
    expect((await get(gateway, 'orders')).status).toBe(200);
  }, 90_000);
});
