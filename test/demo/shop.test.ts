/**
 * The shop end to end through the gateway, every service a real process (direct mode, no
 * sidecars): listing, a confirmed order, a payment failure compensated, idempotent retries,
 * each customer's keys and orders kept apart, bad input.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../support/index.js';
import { http, Stack } from './stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = new Stack();
  await stack.start();
});
afterAll(async () => {
  await stack.destroy();
});

const api = (path: string) => `${stack.gateway}${path}`;
const placeOrder = (body: unknown, key: string = randomUUID()) => http('POST', api('/api/orders'), body, { 'idempotency-key': key });
const stockOf = async (id: string): Promise<number> => (await http('GET', api(`/api/products/${id}`))).body.stock;
const payments = (path: string) => `${stack.get('payments').url}${path}`;

async function notificationsFor(userId: string, orderId: string): Promise<{ type: string; message: string }[]> {
  const res = await http('GET', api(`/api/notifications?userId=${userId}`));
  expect(res.status).toBe(200);
  return res.body.notifications.filter((n: { orderId: string }) => n.orderId === orderId);
}

describe('demo shop', () => {
  it('lists the seeded products with stock from inventory, and the seeded users', async () => {
    const res = await http('GET', api('/api/products'));
    expect(res.status).toBe(200);
    expect(res.body.products.length).toBeGreaterThanOrEqual(5);
    for (const p of res.body.products) {
      expect(p).toMatchObject({ id: expect.any(String), name: expect.any(String), priceCents: expect.any(Number), catalogVersion: 'v1' });
      expect(p.stock).toBeGreaterThan(0);
    }
    const one = await http('GET', api('/api/products/p1'));
    expect(one.body).toMatchObject({ id: 'p1', catalogVersion: 'v1', stock: expect.any(Number) });
    for (const id of ['u1', 'u2', 'u3']) expect((await http('GET', api(`/api/users/${id}`))).body.id).toBe(id);

    const missing = await http('GET', api('/api/products/p404'));
    expect(missing.status).toBe(404);
    expect(missing.body.error).toMatchObject({ code: 'product-not-found', message: expect.stringContaining('p404') });
    expect((await http('GET', api('/api/users/nobody'))).status).toBe(404);
  });

  it('confirms an order: stock goes down, the payment is captured, the customer is notified', async () => {
    const before = await stockOf('p2');
    const res = await placeOrder({ userId: 'u1', items: [{ productId: 'p2', quantity: 3 }] });
    expect(res.status).toBe(201);
    const order = res.body;
    expect(order).toMatchObject({ status: 'confirmed', userId: 'u1', totalCents: 3 * 3900 });
    expect(order.steps.map((s: { step: string; outcome: string }) => `${s.step}:${s.outcome}`)).toEqual(['reserve:ok', 'charge:ok', 'confirm:ok']);
    expect(await stockOf('p2')).toBe(before - 3);

    const charge = await http('GET', payments(`/charges/${order.id}`));
    expect(charge.body).toMatchObject({ status: 'captured', amountCents: 3 * 3900, userId: 'u1' });
    // Which replica answered (`--replica`, skein demo's instance id; `payments` by default).
    expect(charge.headers.get('payments-replica')).toBe('payments');

    const read = await http('GET', api(`/api/orders/${order.id}?userId=u1`));
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ id: order.id, status: 'confirmed', steps: order.steps });

    const delivered = await waitUntil(async () => {
      const list = await notificationsFor('u1', order.id);
      return list.length > 0 ? list : undefined;
    }, { timeoutMs: 10_000, what: 'OrderCreated notification' });
    expect(delivered).toHaveLength(1);
    expect(delivered[0]).toMatchObject({ type: 'OrderCreated', message: expect.stringContaining('confirmed') });

    // A later order's notification comes first: the list is the latest, newest first.
    const later = (await placeOrder({ userId: 'u1', items: [{ productId: 'p2', quantity: 1 }] })).body;
    const ids = await waitUntil(async () => {
      const all: { orderId: string }[] = (await http('GET', api('/api/notifications?userId=u1'))).body.notifications;
      return all.some((n) => n.orderId === later.id) ? all.map((n) => n.orderId) : undefined;
    }, { timeoutMs: 10_000, what: 'the later order\'s notification' });
    expect(ids.indexOf(later.id)).toBeLessThan(ids.indexOf(order.id));
  });

  it('cancels an order whose payment fails, releasing its stock and taking no money', async () => {
    const before = { p3: await stockOf('p3'), p5: await stockOf('p5') };
    expect((await http('PUT', payments('/admin/faults'), { errorRate: 1 })).body).toMatchObject({ errorRate: 1 });
    try {
      const res = await placeOrder({ userId: 'u2', items: [{ productId: 'p3', quantity: 2 }, { productId: 'p5', quantity: 1 }] });
      expect(res.status).toBe(201);
      const order = res.body;
      expect(order.status).toBe('cancelled');
      expect(order.reason).toMatch(/payment failed/);
      // Compensation runs in reverse: the charge is voided, then the stock released.
      expect(order.steps.map((s: { step: string; outcome: string }) => `${s.step}:${s.outcome}`)).toEqual(['reserve:ok', 'charge:failed', 'refund:ok', 'release:ok']);
      expect({ p3: await stockOf('p3'), p5: await stockOf('p5') }).toEqual(before);

      const charge = await http('GET', payments(`/charges/${order.id}`));
      expect(charge.body.status).toBe('voided');
      const u2charges = await http('GET', payments('/charges?userId=u2'));
      expect(u2charges.body.charges.filter((c: { status: string }) => c.status === 'captured')).toEqual([]);

      const cancelled = await waitUntil(async () => {
        const list = await notificationsFor('u2', order.id);
        return list.length > 0 ? list : undefined;
      }, { timeoutMs: 10_000, what: 'OrderCancelled notification' });
      expect(cancelled).toEqual([expect.objectContaining({ type: 'OrderCancelled', message: expect.stringContaining('cancelled') })]);
    } finally {
      await http('PUT', payments('/admin/faults'), { errorRate: 0, latencyMs: 0 });
    }
  });

  it('cancels an order for more than is in stock without charging', async () => {
    const stock = await stockOf('p4');
    expect(stock + 1).toBeLessThanOrEqual(1000); // the gateway's per-item limit
    const res = await placeOrder({ userId: 'u3', items: [{ productId: 'p4', quantity: stock + 1 }] });
    expect(res.body).toMatchObject({ status: 'cancelled', reason: expect.stringContaining('in stock') });
    expect(res.body.steps.map((s: { step: string }) => s.step)).toEqual(['reserve']);
    expect(await stockOf('p4')).toBe(stock);
    expect((await http('GET', payments(`/charges/${res.body.id}`))).status).toBe(404);
  });

  it('answers a retried POST with the same Idempotency-Key from the first order: one order, one charge', async () => {
    const key = randomUUID();
    const body = { userId: 'u3', items: [{ productId: 'p1', quantity: 1 }] };
    const before = await stockOf('p1');
    // Concurrent and sequential retries alike.
    const [a, b] = await Promise.all([placeOrder(body, key), placeOrder(body, key)]);
    const c = await placeOrder(body, key);
    expect([a.status, b.status, c.status]).toEqual([201, 201, 201]);
    expect(new Set([a.body.id, b.body.id, c.body.id]).size).toBe(1);
    expect(c.headers.get('idempotent-replayed')).toBe('true');
    expect(await stockOf('p1')).toBe(before - 1);
    const charges = (await http('GET', payments('/charges?userId=u3'))).body.charges.filter((x: { id: string }) => x.id === a.body.id);
    expect(charges).toHaveLength(1);

    const reused = await placeOrder({ ...body, items: [{ productId: 'p1', quantity: 2 }] }, key);
    expect(reused.status).toBe(422);
    expect(reused.body.error.code).toBe('idempotency-key-reused');
  });

  it('slows charges when payments is told to (latency knob)', async () => {
    await http('PUT', payments('/admin/faults'), { latencyMs: 300 });
    try {
      const started = Date.now();
      const res = await placeOrder({ userId: 'u1', items: [{ productId: 'p5', quantity: 1 }] });
      expect(res.body.status).toBe('confirmed');
      expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    } finally {
      await http('PUT', payments('/admin/faults'), { latencyMs: 0 });
    }
    const bad = await http('PUT', payments('/admin/faults'), { errorRate: 2 });
    expect(bad.status).toBe(422);
    expect(bad.body.error.message).toMatch(/errorRate/);
  });

  it.each([
    ['malformed JSON', '{"userId": "u1", items', 400, 'invalid-json', /not valid JSON/],
    ['an empty body', '', 400, 'invalid-json', /empty/],
    ['a negative quantity', { userId: 'u1', items: [{ productId: 'p1', quantity: -1 }] }, 422, 'invalid-order', /items\[0\]\.quantity: must be at least 1/],
    ['a fractional quantity', { userId: 'u1', items: [{ productId: 'p1', quantity: 1.5 }] }, 422, 'invalid-order', /whole number/],
    ['no items', { userId: 'u1', items: [] }, 422, 'invalid-order', /items: must hold at least one item/],
    ['a missing userId', { items: [{ productId: 'p1', quantity: 1 }] }, 422, 'invalid-order', /userId: is required/],
    ['an unknown field', { userId: 'u1', items: [{ productId: 'p1', quantity: 1 }], coupon: 'x' }, 422, 'invalid-order', /coupon/],
    ['an unknown product', { userId: 'u1', items: [{ productId: 'p999', quantity: 1 }] }, 422, 'unknown-product', /p999/],
    ['an unknown user', { userId: 'u999', items: [{ productId: 'p1', quantity: 1 }] }, 422, 'unknown-user', /u999/],
    ['a product listed twice', { userId: 'u1', items: [{ productId: 'p1', quantity: 1 }, { productId: 'p1', quantity: 2 }] }, 422, 'invalid-order', /twice/],
  ])('rejects %s with a clear 4xx', async (_what, body, status, code, message) => {
    const before = await stockOf('p1');
    const res = await placeOrder(body);
    expect(res.status).toBe(status);
    expect(res.body.error.code).toBe(code);
    expect(res.body.error.message).toMatch(message);
    expect(await stockOf('p1')).toBe(before);
  });

  it('keeps each customer\'s Idempotency-Keys their own: the same key from two customers places two orders', async () => {
    const key = randomUUID();
    const forU1 = await placeOrder({ userId: 'u1', items: [{ productId: 'p1', quantity: 1 }] }, key);
    const forU2 = await placeOrder({ userId: 'u2', items: [{ productId: 'p2', quantity: 2 }] }, key);
    expect([forU1.status, forU2.status]).toEqual([201, 201]);
    expect(forU2.body).toMatchObject({ status: 'confirmed', userId: 'u2', items: [expect.objectContaining({ productId: 'p2', quantity: 2 })] });
    expect(forU2.body.id).not.toBe(forU1.body.id);
    expect(forU2.headers.get('idempotent-replayed')).toBeNull();
    // Each customer's retry still finds their own order, and each order was charged once.
    const retried = await placeOrder({ userId: 'u2', items: [{ productId: 'p2', quantity: 2 }] }, key);
    expect(retried.body.id).toBe(forU2.body.id);
    expect(retried.headers.get('idempotent-replayed')).toBe('true');
    expect((await http('GET', payments(`/charges/${forU1.body.id}`))).body).toMatchObject({ status: 'captured', userId: 'u1' });
    expect((await http('GET', payments(`/charges/${forU2.body.id}`))).body).toMatchObject({ status: 'captured', userId: 'u2' });
  });

  it('shows an order only to its customer: another customer gets the 404 of an order that does not exist', async () => {
    const order = (await placeOrder({ userId: 'u1', items: [{ productId: 'p1', quantity: 1 }] })).body;
    const own = await http('GET', api(`/api/orders/${order.id}?userId=u1`));
    expect(own.status).toBe(200);
    expect(own.body).toMatchObject({ id: order.id, userId: 'u1' });
    const other = await http('GET', api(`/api/orders/${order.id}?userId=u2`));
    const none = await http('GET', api('/api/orders/ord_missing?userId=u2'));
    expect(other.status).toBe(404);
    expect(other.body.error).toEqual({ code: 'order-not-found', message: `no order with id "${order.id}"` });
    expect(none.body.error).toEqual({ code: 'order-not-found', message: 'no order with id "ord_missing"' });
    // Who asks is part of the request, as on notifications; orders' own port still answers any order.
    const anonymous = await http('GET', api(`/api/orders/${order.id}`));
    expect(anonymous.status).toBe(400);
    expect(anonymous.body.error).toMatchObject({ code: 'missing-user-id', message: expect.stringContaining('?userId=') });
    expect((await http('GET', `${stack.get('orders').url}/orders/${order.id}`)).body.id).toBe(order.id);
  });

  it('requires an Idempotency-Key on POST /api/orders and a userId on notifications', async () => {
    const res = await http('POST', api('/api/orders'), { userId: 'u1', items: [{ productId: 'p1', quantity: 1 }] });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'missing-idempotency-key', message: expect.stringContaining('Idempotency-Key') });
    const n = await http('GET', api('/api/notifications'));
    expect(n.status).toBe(400);
    expect(n.body.error.code).toBe('missing-user-id');
  });
});
