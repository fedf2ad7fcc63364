/**
 * One of the two payments instances dies (app and sidecar killed with SIGKILL, as in a
 * crash) while orders keep coming: orders' sidecar retries charges that could not reach it
 * on the other instance and ejects the dead one, so no order fails. Then it comes back.
 */
import type { DemoClient, Placed } from './demo-client.js';
import { checkpoint, type Scenario, type ScenarioIo } from './scenario.js';

const VICTIM = 'payments-2';
const PRODUCT = 'p2';
const CONCURRENCY = 2;
/**
 * More than ten seconds of orders can take, with the load generator's: a fast machine places
 * over a thousand here, and one cancelled for want of stock would read as a failed order.
 */
const STOCK = 100_000;

async function placeFor(demo: DemoClient, ms: number, signal: AbortSignal): Promise<Placed[]> {
  const results: Placed[] = [];
  const until = Date.now() + ms;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, n) => {
      while (Date.now() < until && !signal.aborted) {
        results.push(await demo.placeOrder(`u${(n % 3) + 1}`, [{ productId: PRODUCT, quantity: 1 }]));
      }
    }),
  );
  return results;
}

/** The orders that did not end confirmed, shown as a count per reason (the first ones alone would hide the rest). */
function notConfirmed(placed: readonly Placed[], io: ScenarioIo): Placed[] {
  const bad = placed.filter((p) => p.order?.status !== 'confirmed');
  const byReason = new Map<string, number>();
  for (const p of bad) {
    const why = p.order ? `${p.order.status} (${p.order.reason})` : `${p.status} ${p.error?.code ?? ''} ${p.error?.message ?? ''}`;
    byReason.set(why, (byReason.get(why) ?? 0) + 1);
  }
  for (const [why, count] of [...byReason].sort((a, b) => b[1] - a[1])) io.show(`not confirmed: ${count} × ${why}`);
  return bad;
}

export const killInstance: Scenario = {
  name: 'kill-instance',
  summary: 'one of two payments instances is killed under load → no order fails; then it is restarted',
  watch: (demo) => [
    `dashboard ${demo.state.dashboardUrl} (payments' instance count, success rate stays at 100%)`,
    'npx skein get services payments   (instances and their health)',
    `curl -s ${demo.sidecarAdminUrl('orders')}/clusters   (the dead endpoint ejected)`,
  ],
  async run(demo, io, { holdMs }) {
    await demo.setStock(PRODUCT, STOCK);
    const retriesBefore = await demo.metric('orders', 'skein_retries_total', { destination: 'payments' });
    io.say(`placing orders, ${CONCURRENCY} at a time, for 8 s; ${VICTIM} is killed (SIGKILL, app and sidecar) after 2 s`);
    const load = placeFor(demo, 8_000, io.signal);
    let killed = false;
    try {
      await io.hold(2_000);
      checkpoint(io);
      await demo.instanceAction(VICTIM, 'kill');
      killed = true;
      io.show(`${VICTIM} killed`);
      const placed = await load;
      const confirmed = placed.filter((p) => p.order?.status === 'confirmed').length;
      const bad = notConfirmed(placed, io);
      const retries = (await demo.metric('orders', 'skein_retries_total', { destination: 'payments' })) - retriesBefore;
      io.show(`orders' sidecar retried ${retries} calls to payments on the surviving instance`);
      io.check(placed.length > 0 && bad.length === 0, `${confirmed}/${placed.length} orders confirmed while ${VICTIM} was down`);
      await io.hold(holdMs);
    } finally {
      await load;
      if (killed) {
        io.say(`starting ${VICTIM} again (a new sidecar gets a certificate and joins the mesh)`);
        await demo.instanceAction(VICTIM, 'start');
      }
    }
    // Interrupted: things are put back, and what would follow measures nothing.
    checkpoint(io);
    const after = await placeFor(demo, 2_000, io.signal);
    io.check(after.length > 0 && notConfirmed(after, io).length === 0, `${VICTIM} is back; ${after.length} more orders confirmed`);
  },
};
