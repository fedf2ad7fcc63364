/**
 * Every charge fails: orders' sidecar opens the circuit to payments, so orders are cancelled
 * fast instead of waiting on a failing service, and the saga gives the stock back and
 * refunds or voids whatever may have been charged. Then payments recovers and orders go
 * through again.
 */
import type { DemoClient, Order, Placed } from './demo-client.js';
import { checkpoint, type Scenario, type ScenarioIo } from './scenario.js';

const ORDERS = 12;
const PRODUCT = 'p3';
const USER = 'u3';
/** Room for the orders placed here and the load generator's, which may buy the same product meanwhile. */
const MIN_STOCK = 100;

async function breakerOpened(demo: DemoClient): Promise<{ open: boolean; rejections: number }> {
  const [state, rejections] = await Promise.all([
    demo.metric('orders', 'skein_circuit_state', { destination: 'payments' }),
    demo.metric('orders', 'skein_circuit_rejections_total', { destination: 'payments' }),
  ]);
  return { open: state === 1, rejections };
}

/** Waits until every compensation the saga owes for these orders has run. */
async function settled(demo: DemoClient, io: ScenarioIo, ids: readonly string[], timeoutMs: number): Promise<Order[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const orders = await Promise.all(ids.map((id) => demo.order(USER, id)));
    const owing = orders.filter((o) => o.steps.some((s) => s.step === 'reserve' && s.outcome === 'ok') && !o.steps.some((s) => s.step === 'release' && s.outcome === 'ok'));
    if (owing.length === 0 || Date.now() > deadline || io.signal.aborted) return orders;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

export const paymentsOutage: Scenario = {
  name: 'payments-outage',
  summary: 'payments fail → the circuit opens → orders fail fast, stock is released, nothing is charged',
  watch: (demo) => [
    `dashboard ${demo.state.dashboardUrl} (payments turns red; orders → payments errors)`,
    'npx skein stat payments',
    `curl -s ${demo.sidecarAdminUrl('orders')}/clusters   (payments' breaker state as orders' sidecar sees it)`,
  ],
  async run(demo, io, { holdMs }) {
    let stockBefore = await demo.stock(PRODUCT);
    if (stockBefore < MIN_STOCK) {
      io.say(`restocking ${PRODUCT} from ${stockBefore} to ${MIN_STOCK}, so that no order here is cancelled for want of stock`);
      await demo.setStock(PRODUCT, MIN_STOCK);
      stockBefore = await demo.stock(PRODUCT);
    }
    io.say('payments fails every charge, slowly: PUT /admin/faults {"errorRate": 1, "latencyMs": 400} on each payments instance');
    await demo.setPaymentsFaults({ errorRate: 1, latencyMs: 400 });
    const placed: Placed[] = [];
    try {
      io.say(`placing ${ORDERS} orders of 1 × ${PRODUCT} for ${USER}, one after another`);
      for (let n = 0; n < ORDERS; n++) {
        checkpoint(io);
        const p = await demo.placeOrder(USER, [{ productId: PRODUCT, quantity: 1 }]);
        placed.push(p);
        const breaker = await breakerOpened(demo);
        io.show(`${String(n + 1).padStart(2)}. ${p.order?.id ?? '-'} ${p.order?.status ?? p.status} in ${Math.round(p.ms)} ms${p.order?.reason ? ` (${p.order.reason})` : ''}${breaker.open ? '  [circuit open]' : ''}`);
      }
      const breaker = await breakerOpened(demo);
      io.check(breaker.rejections > 0, `orders' sidecar opened the circuit to payments (${breaker.rejections} calls refused without reaching payments)`);
      const cancelled = placed.filter((p) => p.order?.status === 'cancelled').length;
      io.check(cancelled === ORDERS, `${cancelled}/${ORDERS} orders cancelled with a reason (none left pending, none failed)`);
      const first = placed[0]?.ms ?? 0;
      const slowest = Math.max(...placed.slice(-4).map((p) => p.ms));
      io.show(`the first order waited ${Math.round(first)} ms on failing payments; the last ones took at most ${Math.round(slowest)} ms: the open circuit refuses at once`);
      await io.hold(holdMs);
    } finally {
      io.say('payments recovers: no more injected errors or latency');
      await demo.setPaymentsFaults({ errorRate: 0, latencyMs: 0 });
    }
    // Interrupted: things are put back, and what would follow measures nothing.
    checkpoint(io);

    const ids = placed.flatMap((p) => (p.order ? [p.order.id] : []));
    io.say('waiting for the saga to finish its compensations (refunds go through once the circuit lets a trial call pass)');
    const orders = await settled(demo, io, ids, 30_000);
    const released = (await Promise.all(ids.map((id) => demo.reservation(id)))).filter((r) => r === undefined || r === 'released').length;
    io.check(released === ids.length, `stock released for ${released}/${ids.length} cancelled orders`);
    const charges = await Promise.all(ids.map((id) => demo.charge(id)));
    const captured = charges.filter((c) => c === 'captured').length;
    io.check(captured === 0, `${captured} of them charged (payments: ${charges.filter((c) => c === undefined).length} never charged, ${charges.filter((c) => c === 'voided').length} voided, ${charges.filter((c) => c === 'refunded').length} refunded)`);
    io.check(orders.every((o) => o.status === 'cancelled'), 'every order still cancelled');
    const stockAfter = await demo.stock(PRODUCT);
    io.show(`stock of ${PRODUCT}: ${stockBefore} before, ${stockAfter} after (the load generator may have sold some meanwhile)`);

    io.say('a new order once the circuit has closed again');
    const deadline = Date.now() + 30_000;
    let last: Placed | undefined;
    while (Date.now() < deadline && !io.signal.aborted) {
      last = await demo.placeOrder(USER, [{ productId: PRODUCT, quantity: 1 }]);
      if (last.order?.status === 'confirmed') break;
      await io.hold(1_000);
    }
    io.check(last?.order?.status === 'confirmed', `order ${last?.order?.id ?? ''} ${last?.order?.status ?? last?.status ?? 'not placed'}`);
  },
};
