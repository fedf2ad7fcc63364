/**
 * notifications is stopped: orders keep being confirmed, their OrderCreated events wait in
 * orders' outbox, and they all arrive, once each, when notifications is back.
 */
import { checkpoint, type Scenario } from './scenario.js';

const ORDERS = 3;
const USER = 'u2';
const PRODUCT = 'p1';

export const notificationsDown: Scenario = {
  name: 'notifications-down',
  summary: 'notifications is stopped → events queue in orders\' outbox → all arrive once it is back',
  watch: (demo) => [
    `dashboard ${demo.state.dashboardUrl} (orders → notifications fails, then recovers)`,
    `curl -s ${demo.appUrl('orders')}/health   (outbox.pending)`,
    `tail -f ${demo.state.dataDir}/notifications.log   (one line per event delivered)`,
  ],
  async run(demo, io, { holdMs }) {
    await demo.setStock(PRODUCT, 1_000);
    io.say('stopping notifications (its sidecar drains and leaves the mesh, then the app stops)');
    await demo.instanceAction('notifications', 'stop');
    const ids: string[] = [];
    try {
      io.say(`placing ${ORDERS} orders for ${USER}`);
      for (let n = 0; n < ORDERS; n++) {
        const p = await demo.placeOrder(USER, [{ productId: PRODUCT, quantity: 1 }]);
        if (p.order) ids.push(p.order.id);
        io.show(`order ${p.order?.id ?? '-'}: ${p.order?.status ?? `${p.status} ${p.error?.code ?? ''}`}`);
      }
      io.check(ids.length === ORDERS, `${ids.length}/${ORDERS} orders placed while notifications is down`);
      const pending = await demo.outboxPending();
      io.check(pending >= ids.length, `${pending} events waiting in orders' outbox`);
      await io.hold(holdMs);
    } finally {
      io.say('starting notifications again');
      await demo.instanceAction('notifications', 'start');
    }
    // Interrupted: things are put back, and what would follow measures nothing.
    checkpoint(io);
    const started = Date.now();
    const deadline = started + 30_000;
    let arrived: string[] = [];
    while (Date.now() < deadline && !io.signal.aborted) {
      // Callers may learn that notifications is back a moment after it is (a 503 until then).
      const listed = await demo.notifications(USER).catch(() => []);
      const delivered = new Set(listed.filter((n) => n.type === 'OrderCreated').map((n) => n.orderId));
      arrived = ids.filter((id) => delivered.has(id));
      if (arrived.length === ids.length) break;
      await io.hold(200);
    }
    io.check(arrived.length === ids.length, `${arrived.length}/${ids.length} events arrived ${((Date.now() - started) / 1000).toFixed(1)} s after notifications was back`);
    const copies = (await demo.notifications(USER)).filter((n) => ids.includes(n.orderId) && n.type === 'OrderCreated').length;
    io.check(copies === arrived.length, `each once (${copies} notifications for ${arrived.length} orders)`);
  },
};
