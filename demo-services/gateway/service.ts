/**
 * `gateway`: the shop's public HTTP API (SPEC §9). It checks input at the edge, so bad
 * requests get a clear 4xx before any other service is called, then composes the answer
 * from catalog (gRPC), inventory, users, orders and notifications, all through the mesh.
 * Product JSON says which catalog version answered (`catalogVersion`), so a canary shows.
 */
import { z } from 'zod';
import { CatalogClient } from '../catalog/client.js';
import type { Product } from '../catalog/proto.js';
import { HttpError } from '../shared/http-errors.js';
import { Router, type Request } from '../shared/http-server.js';
import { answerError, type Answer, type ServiceClient } from '../shared/mesh.js';
import { httpApp, type ServiceDefinition } from '../shared/service.js';
import type { TraceHeaders } from '../shared/trace.js';
import { validate } from '../shared/validate.js';

const PlaceOrderBody = z
  .object({
    userId: z.string({ required_error: 'is required', invalid_type_error: 'must be a string' }).min(1, 'must not be empty').max(100),
    items: z
      .array(
        z
          .object({
            productId: z.string({ required_error: 'is required', invalid_type_error: 'must be a string' }).min(1, 'must not be empty').max(100),
            quantity: z
              .number({ required_error: 'is required', invalid_type_error: 'must be a number' })
              .int('must be a whole number')
              .min(1, 'must be at least 1')
              .max(1000, 'must be at most 1000'),
          })
          .strict(),
        { required_error: 'is required', invalid_type_error: 'must be an array' },
      )
      .min(1, 'must hold at least one item')
      .max(50, 'may hold at most 50 items'),
  }, { invalid_type_error: 'the body must be a JSON object' })
  .strict();

function productJson(p: Product, stock: number | null) {
  return {
    id: p.id,
    name: p.name,
    description: p.description,
    priceCents: p.priceCents,
    currency: p.currency,
    ...(p.discountedPriceCents !== undefined ? { discountedPriceCents: p.discountedPriceCents } : {}),
    catalogVersion: p.version,
    stock,
  };
}

/** Relays a service's answer: 2xx as is, errors through answerError (503 for 5xx and sidecar errors). */
function relay(service: string, answer: Answer, headers?: string[]) {
  if (answer.status >= 300) throw answerError(service, answer);
  const out: Record<string, string> = {};
  for (const name of headers ?? []) {
    const v = answer.headers[name];
    if (typeof v === 'string') out[name] = v;
  }
  return { status: answer.status, body: answer.body, headers: out };
}

/**
 * The customer a read is for. The demo has no login: a customer names themselves, as
 * `userId` in an order's body and `?userId=` on reads; a real shop takes it from the session.
 */
function requiredUserId(query: URLSearchParams, example: string): string {
  const userId = query.get('userId');
  if (!userId) throw new HttpError(400, 'missing-user-id', `add ?userId=<id>, e.g. ${example}`);
  return userId;
}

export const gateway: ServiceDefinition = {
  name: 'gateway',
  start({ log, mesh }) {
    const catalog = new CatalogClient(mesh);
    const inventory = mesh.http('inventory');
    const users = mesh.http('users');
    const orders = mesh.http('orders');
    const notifications = mesh.http('notifications');

    /** Stock for the given products; null when inventory cannot say (the list still shows). */
    async function stockOf(ids: string[], trace: TraceHeaders): Promise<{ stock: Record<string, number> | null; warning?: string }> {
      try {
        const answer = await inventory.call<{ stock: Record<string, number> }>('GET', `/stock?ids=${ids.map(encodeURIComponent).join(',')}`, { trace, timeoutMs: 3_000 });
        if (answer.status === 200) return { stock: answer.body.stock };
        return { stock: null, warning: answerError('inventory', answer).message };
      } catch (err) {
        return { stock: null, warning: (err as Error).message };
      }
    }

    async function placeOrder(req: Request) {
      const key = req.headers['idempotency-key'];
      if (typeof key !== 'string' || key.trim() === '' || key.length > 200) {
        throw new HttpError(400, 'missing-idempotency-key', 'send an Idempotency-Key header (1-200 characters, e.g. a UUID) so a retried POST cannot place the order twice');
      }
      const body = validate(PlaceOrderBody, await req.json(), 'invalid-order');
      const ids = body.items.map((i) => i.productId);
      const dup = ids.find((id, n) => ids.indexOf(id) !== n);
      if (dup) throw new HttpError(422, 'invalid-order', `items: product "${dup}" is listed twice; put the total in one quantity`);

      // One ListProducts call prices the whole order: a call per item could be answered by
      // both versions during a canary split, mixing list and discounted prices in one order.
      const [user, list] = await Promise.all([users.call('GET', `/users/${encodeURIComponent(body.userId)}`, { trace: req.trace }), catalog.list(req.trace)]);
      const byId = new Map(list.products.map((p) => [p.id, p]));
      const products = ids.map((id) => byId.get(id));
      if (user.status === 404 && !user.headers['x-skein-reason']) throw new HttpError(422, 'unknown-user', `no user with id "${body.userId}"`);
      if (user.status !== 200) throw answerError('users', user);
      const unknown = ids.filter((_, n) => products[n] === undefined);
      if (unknown.length > 0) throw new HttpError(422, 'unknown-product', `no product with id ${unknown.map((id) => `"${id}"`).join(', ')}`);

      const items = body.items.map((item, n) => {
        const p = products[n]!;
        return { productId: p.id, name: p.name, quantity: item.quantity, unitPriceCents: p.discountedPriceCents ?? p.priceCents };
      });
      const answer = await orders.call('POST', '/orders', {
        body: { userId: body.userId, currency: products[0]!.currency, items },
        headers: { 'idempotency-key': key },
        trace: req.trace,
        timeoutMs: 30_000,
      });
      return relay('orders', answer, ['idempotent-replayed']);
    }

    const router = new Router({ edge: true })
      .add('GET', '/health', () => ({ body: { status: 'ok', service: 'gateway' } }))
      .add('GET', '/api/products', async ({ trace }) => {
        const list = await catalog.list(trace);
        const { stock, warning } = await stockOf(list.products.map((p) => p.id), trace);
        return {
          body: {
            products: list.products.map((p) => productJson(p, stock ? (stock[p.id] ?? 0) : null)),
            catalogVersion: list.version,
            ...(warning ? { warnings: [`stock unknown: ${warning}`] } : {}),
          },
        };
      })
      .add('GET', '/api/products/:id', async ({ params, trace }) => {
        const product = await catalog.get(params.id!, trace);
        if (!product) throw new HttpError(404, 'product-not-found', `no product with id "${params.id}"`);
        const { stock, warning } = await stockOf([product.id], trace);
        return { body: { ...productJson(product, stock ? (stock[product.id] ?? 0) : null), ...(warning ? { warnings: [`stock unknown: ${warning}`] } : {}) } };
      })
      .add('GET', '/api/users/:id', async ({ params, trace }) => relay('users', await users.call('GET', `/users/${encodeURIComponent(params.id!)}`, { trace })))
      .add('POST', '/api/orders', placeOrder)
      // A customer reads only their own orders: another's is a 404, as if it did not exist.
      .add('GET', '/api/orders/:id', async ({ params, query, trace }) => {
        const userId = requiredUserId(query, `/api/orders/${params.id}?userId=u1`);
        return relay('orders', await orders.call('GET', `/orders/${encodeURIComponent(params.id!)}?userId=${encodeURIComponent(userId)}`, { trace }));
      })
      .add('GET', '/api/notifications', async ({ query, trace }) => {
        const userId = requiredUserId(query, '/api/notifications?userId=u1');
        return relay('notifications', await notifications.call('GET', `/notifications?userId=${encodeURIComponent(userId)}`, { trace }));
      });

    return httpApp(router.listener(log), () => catalog.close());
  },
};
