/**
 * `orders`: places orders through the saga (saga.ts), answers retried creates from the
 * idempotency key (each customer's keys their own), and relays its outbox to `notifications`
 * (outbox-relay.ts). Orders a previous run left pending are driven to an end on start.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { HttpError } from '../shared/http-errors.js';
import { Router, type Reply } from '../shared/http-server.js';
import { intFlag } from '../shared/options.js';
import { httpApp, type ServiceDefinition } from '../shared/service.js';
import { validate } from '../shared/validate.js';
import { OutboxRelay } from './outbox-relay.js';
import { OrderSaga } from './saga.js';
import { OrderStore, type Order } from './store.js';

const CreateOrderBody = z
  .object({
    userId: z.string().min(1).max(100),
    currency: z.string().length(3).default('USD'),
    items: z
      .array(
        z
          .object({
            productId: z.string().min(1).max(100),
            name: z.string().max(200).default(''),
            quantity: z.number().int().positive().max(1000),
            unitPriceCents: z.number().int().min(0).max(10_000_000),
          })
          .strict(),
      )
      .min(1)
      .max(50),
  })
  .strict();

type CreateOrder = z.infer<typeof CreateOrderBody>;

const COMPENSATION_SWEEP_MS = 1_000;

/** What makes two creates "the same request": who orders what, not the prices looked up for it. */
function requestHash(body: CreateOrder): string {
  const items = body.items.map((i) => [i.productId, i.quantity] as const).sort((a, b) => a[0].localeCompare(b[0]));
  return createHash('sha256').update(JSON.stringify([body.userId, body.currency, items])).digest('hex');
}

const created = (order: Order, replayed: boolean): Reply => ({
  status: 201,
  body: order,
  headers: replayed ? { 'idempotent-replayed': 'true' } : {},
});

export const orders: ServiceDefinition = {
  name: 'orders',
  flags: {
    'outbox-max-backoff-ms': { description: 'longest wait between delivery attempts of one event', default: '10000' },
    'outbox-poll-ms': { description: 'how often the relay looks at the outbox when idle', default: '1000' },
  },
  start({ flags, dataDir, log, mesh }) {
    const maxBackoffMs = intFlag(flags, 'outbox-max-backoff-ms', 10, 3_600_000);
    const idlePollMs = intFlag(flags, 'outbox-poll-ms', 10, 60_000);
    const store = new OrderStore(dataDir);
    const saga = new OrderSaga({ store, inventory: mesh.http('inventory'), payments: mesh.http('payments'), log, compensationMaxBackoffMs: maxBackoffMs });
    const relay = new OutboxRelay(store, mesh.http('notifications'), log, { baseBackoffMs: 100, maxBackoffMs, idlePollMs, batchSize: 50 });
    // Sagas running in this process, by order id: a concurrent retry waits for the first.
    const inflight = new Map<string, Promise<Order>>();

    const drive = (orderId: string, trace = {}, resumed = false): Promise<Order> => {
      const running = saga.run(orderId, trace, resumed).finally(() => {
        inflight.delete(orderId);
        relay.kick();
      });
      inflight.set(orderId, running);
      return running;
    };

    // Orders a previous run left pending, resumed now and on every sweep until they end (a
    // resumed saga leaves its order pending while its calls cannot reach the services yet).
    const resumed = new Set<string>();
    const resumePending = (): void => {
      for (const pendingId of store.pendingOrderIds()) {
        if (inflight.has(pendingId)) continue;
        if (!resumed.has(pendingId)) log.info({ orderId: pendingId }, 'resuming saga left pending by a previous run');
        resumed.add(pendingId);
        drive(pendingId, {}, true).then(
          (order) => {
            if (order.status !== 'pending') resumed.delete(order.id);
          },
          (err: unknown) => log.error({ err, orderId: pendingId }, 'resumed saga failed'),
        );
      }
    };
    resumePending();
    relay.start();
    let sweeping = false;
    const sweeper = setInterval(() => {
      if (sweeping) return;
      sweeping = true;
      resumePending();
      saga
        .runDueCompensations()
        .catch((err: unknown) => log.error({ err }, 'compensation sweep failed'))
        .finally(() => {
          sweeping = false;
          relay.kick();
        });
    }, COMPENSATION_SWEEP_MS);

    const router = new Router()
      .add('GET', '/health', () => ({ body: { status: 'ok', service: 'orders', outbox: store.outboxStats() } }))
      .add('POST', '/orders', async (req) => {
        const key = req.headers['idempotency-key'];
        if (typeof key !== 'string' || key.length === 0 || key.length > 200) {
          throw new HttpError(400, 'missing-idempotency-key', 'send an Idempotency-Key header (1-200 characters) so a retried request cannot create a second order');
        }
        const body = validate(CreateOrderBody, await req.json(), 'invalid-order');
        const hash = requestHash(body);
        const existing = store.byIdempotencyKey(body.userId, key);
        if (existing) {
          if (existing.requestHash !== hash) {
            throw new HttpError(422, 'idempotency-key-reused', `Idempotency-Key "${key}" was already used for a different order (${existing.order.id})`);
          }
          const running = inflight.get(existing.order.id);
          // A resumed saga that could not reach the services yet ends with the order still pending.
          const order = running ? await running : existing.order;
          if (order.status === 'pending') throw new HttpError(409, 'order-in-progress', `order ${order.id} is still being placed; retry shortly`);
          return created(order, true);
        }
        const products = new Set(body.items.map((i) => i.productId));
        if (products.size !== body.items.length) throw new HttpError(422, 'invalid-order', 'items: each productId may appear only once');
        const order = store.createPending({ idempotencyKey: key, requestHash: hash, userId: body.userId, currency: body.currency, items: body.items });
        return created(await drive(order.id, req.trace), false);
      })
      // With ?userId= (the gateway always sends it) another customer's order is answered as
      // if it did not exist, so an order id reveals nothing; without it, any order (the
      // service's own record, for an operator on its port).
      .add('GET', '/orders/:id', ({ params, query }) => {
        const order = store.get(params.id!);
        const userId = query.get('userId');
        if (!order || (userId !== null && order.userId !== userId)) throw new HttpError(404, 'order-not-found', `no order with id "${params.id}"`);
        return { body: order };
      });

    return httpApp(router.listener(log), async () => {
      clearInterval(sweeper);
      await relay.stop();
      await Promise.allSettled(inflight.values());
      store.close();
    });
  },
};
