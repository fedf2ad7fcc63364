/**
 * What survives outages and restarts: events written while notifications is down arrive
 * once it is back (none lost, none twice), and every service keeps its data across restarts.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitUntil } from '../support/index.js';
import { http, Stack } from './stack.js';

// Every stack a test makes, so afterEach stops them all even when a test times out mid-start.
let stacks: Stack[] = [];
afterEach(async () => {
  await Promise.all(stacks.map((s) => s.stop()));
  for (const dir of new Set(stacks.map((s) => s.dataDir))) rmSync(dir, { recursive: true, force: true });
  stacks = [];
});

function newStack(dataDir?: string): Promise<Stack> {
  const stack = new Stack(dataDir);
  stacks.push(stack);
  return stack.start();
}

// Two stacks of seven processes, started one after the other: slow on a busy machine.
const SLOW = 90_000;

const placeOrder = (s: Stack, body: unknown, key: string = randomUUID()) => http('POST', `${s.gateway}/api/orders`, body, { 'idempotency-key': key });

describe('demo durability', () => {
  it('delivers every order event exactly once after notifications comes back', async () => {
    const s = await newStack();
    const notifications = s.get('notifications');
    const port = notifications.port;
    await notifications.stop('SIGKILL');

    const placed: string[] = [];
    for (const productId of ['p1', 'p2', 'p3']) {
      const res = await placeOrder(s, { userId: 'u2', items: [{ productId, quantity: 1 }] });
      expect(res.status).toBe(201);
      expect(res.body.status).toBe('confirmed');
      placed.push(res.body.id);
    }
    // The gateway's notification list is down with notifications; orders keeps the events.
    expect((await http('GET', `${s.gateway}/api/notifications?userId=u2`)).status).toBe(503);
    const health = await http('GET', `${s.get('orders').url}/health`);
    expect(health.body.outbox.pending).toBe(3);
    // Wait until the relay has failed at least once, so the redelivery path is what we test.
    await waitUntil(async () => (s.get('orders').logs.some((l) => l.includes('event delivery failed')) ? true : undefined), { timeoutMs: 10_000, what: 'a failed delivery' });

    await s.launch('notifications', port);
    const list = await waitUntil(async () => {
      const res = await http('GET', `${s.gateway}/api/notifications?userId=u2`);
      return res.status === 200 && res.body.notifications.length >= 3 ? res.body.notifications : undefined;
    }, { timeoutMs: 15_000, what: 'three notifications' });
    expect(list.map((n: { orderId: string }) => n.orderId).sort()).toEqual([...placed].sort());
    expect(list.every((n: { type: string }) => n.type === 'OrderCreated')).toBe(true);
    await waitUntil(async () => ((await http('GET', `${s.get('orders').url}/health`)).body.outbox.pending === 0 ? true : undefined), { timeoutMs: 5_000, what: 'empty outbox' });

    // At least once on the wire, once in the log: a redelivered event is recognised.
    const again = { id: list[0].eventId, type: 'OrderCreated', occurredAt: list[0].occurredAt, data: { orderId: list[0].orderId, userId: 'u2' } };
    const dup = await http('POST', `${s.get('notifications').url}/events`, again);
    expect(dup.body).toEqual({ accepted: true, duplicate: true });
    expect((await http('GET', `${s.gateway}/api/notifications?userId=u2`)).body.notifications).toHaveLength(3);
    const readable = readFileSync(join(s.dataDir, 'notifications.log'), 'utf8').trim().split('\n');
    expect(readable).toHaveLength(3);
    for (const id of placed) expect(readable.filter((l) => l.includes(id))).toEqual([expect.stringMatching(new RegExp(`to u2: Your order ${id} \\(1 item\\) is confirmed`))]);
  }, SLOW);

  it('keeps every service\'s data across restarts', async () => {
    const s = await newStack();
    const res = await placeOrder(s, { userId: 'u1', items: [{ productId: 'p6', quantity: 4 }] });
    expect(res.body.status).toBe('confirmed');
    const orderId = res.body.id;
    const stock = (await http('GET', `${s.gateway}/api/products/p6`)).body.stock;
    await waitUntil(async () => ((await http('GET', `${s.gateway}/api/notifications?userId=u1`)).body.notifications.length === 1 ? true : undefined), { timeoutMs: 10_000, what: 'notification' });

    // SIGTERM is a graceful stop: every service exits 0.
    const exits = await Promise.all([...s.procs.values()].map(async (p) => [p.name, await p.stop('SIGTERM')] as const));
    expect(Object.fromEntries(exits)).toEqual(Object.fromEntries(exits.map(([name]) => [name, 0])));
    const again = await newStack(s.dataDir);

    const order = await http('GET', `${again.gateway}/api/orders/${orderId}?userId=u1`);
    expect(order.body).toMatchObject({ id: orderId, status: 'confirmed', totalCents: 4 * 19900 });
    expect((await http('GET', `${again.gateway}/api/products/p6`)).body.stock).toBe(stock);
    expect((await http('GET', `${again.gateway}/api/notifications?userId=u1`)).body.notifications).toHaveLength(1);
    expect((await http('GET', `${again.get('payments').url}/charges/${orderId}`)).body.status).toBe('captured');
    // The same key after a restart is still the same order.
    const retried = await placeOrder(again, { userId: 'u1', items: [{ productId: 'p6', quantity: 4 }] }, res.body.idempotencyKey);
    expect(retried.body.id).toBe(orderId);
    expect((await http('GET', `${again.gateway}/api/products/p6`)).body.stock).toBe(stock);
  }, SLOW);

  it('finishes an order whose saga was cut short by a crash, without charging twice', async () => {
    const s = await newStack();
    const payments = s.get('payments').url;
    await http('PUT', `${payments}/admin/faults`, { latencyMs: 1500 });
    const stockBefore = (await http('GET', `${s.gateway}/api/products/p3`)).body.stock;
    const key = randomUUID();
    const body = { userId: 'u3', items: [{ productId: 'p3', quantity: 2 }] };
    const first = placeOrder(s, body, key);
    // Stock reserved means the saga is now waiting on the (slow) charge: crash orders there.
    await waitUntil(async () => ((await http('GET', `${s.gateway}/api/products/p3`)).body.stock === stockBefore - 2 ? true : undefined), { timeoutMs: 10_000, what: 'reservation' });
    await s.get('orders').stop('SIGKILL');
    expect((await first).status).toBe(503);

    await s.restart('orders');
    await http('PUT', `${payments}/admin/faults`, { latencyMs: 0 });
    const retried = await placeOrder(s, body, key);
    expect(retried.status).toBe(201);
    expect(retried.body.status).toBe('confirmed');
    expect(s.get('orders').logs.some((l) => l.includes('resuming saga'))).toBe(true);
    expect((await http('GET', `${s.gateway}/api/products/p3`)).body.stock).toBe(stockBefore - 2);
    const charges = (await http('GET', `${payments}/charges?userId=u3`)).body.charges;
    expect(charges).toEqual([expect.objectContaining({ id: retried.body.id, status: 'captured', amountCents: 2 * 4500 })]);
  }, SLOW);

  it('keeps a resumed order pending while the services it calls are unreachable, then finishes it', async () => {
    const s = await newStack();
    const payments = s.get('payments').url;
    await http('PUT', `${payments}/admin/faults`, { latencyMs: 1500 });
    const stockBefore = (await http('GET', `${s.gateway}/api/products/p3`)).body.stock;
    const key = randomUUID();
    const body = { userId: 'u3', items: [{ productId: 'p3', quantity: 1 }] };
    const first = placeOrder(s, body, key);
    await waitUntil(async () => ((await http('GET', `${s.gateway}/api/products/p3`)).body.stock === stockBefore - 1 ? true : undefined), { timeoutMs: 10_000, what: 'reservation' });
    await s.get('orders').stop('SIGKILL');
    expect((await first).status).toBe(503);

    // orders comes back while inventory is down: its replayed reservation cannot leave the process.
    const inventory = s.get('inventory');
    const inventoryPort = inventory.port;
    await inventory.stop();
    const orders = await s.restart('orders');
    await waitUntil(() => orders.logs.some((l) => l.includes('could not reach the service yet')) || undefined, { timeoutMs: 10_000, what: 'the resumed saga to wait' });
    const held = await placeOrder(s, body, key);
    expect(held.status).toBe(409);
    expect(held.body.error.code).toBe('order-in-progress');

    await http('PUT', `${payments}/admin/faults`, { latencyMs: 0 });
    await s.launch('inventory', inventoryPort);
    const done = await waitUntil(async () => {
      const res = await placeOrder(s, body, key);
      return res.status === 409 ? undefined : res;
    }, { timeoutMs: 15_000, what: 'the resumed order to end' });
    expect(done.status).toBe(201);
    expect(done.body.status).toBe('confirmed');
    expect((await http('GET', `${s.gateway}/api/products/p3`)).body.stock).toBe(stockBefore - 1);
    expect((await http('GET', `${payments}/charges?userId=u3`)).body.charges).toEqual([expect.objectContaining({ id: done.body.id, status: 'captured' })]);
  }, SLOW);
});
