import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitUntil } from '../../test/support/wait.js';
import { pino } from 'pino';
import { Mesh } from '../shared/mesh.js';
import { OutboxRelay } from './outbox-relay.js';
import { OrderStore } from './store.js';
import { ScriptedService } from './test-fakes.js';

let dir: string;
let store: OrderStore;
let notifications: ScriptedService;
let mesh: Mesh;
let relay: OutboxRelay;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'skein-relay-'));
  store = new OrderStore(dir);
  notifications = new ScriptedService();
  mesh = new Mesh({ DEMO_DIRECT_NOTIFICATIONS: await notifications.start() });
  relay = new OutboxRelay(store, mesh.http('notifications'), pino({ level: 'silent' }), { baseBackoffMs: 20, maxBackoffMs: 40, idlePollMs: 20, batchSize: 2 });
});
afterEach(async () => {
  await relay.stop();
  await mesh.close();
  await notifications.stop();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

function confirmedOrder(n: number): string {
  const order = store.createPending({ idempotencyKey: `k${n}`, requestHash: 'h', userId: 'u1', currency: 'USD', items: [{ productId: 'p1', name: 'x', quantity: n, unitPriceCents: 100 }] });
  store.confirm(order.id);
  return order.id;
}

describe('OutboxRelay', () => {
  it('delivers events in outbox order, retrying a failed one before any behind it', async () => {
    const ids = [1, 2, 3].map(confirmedOrder);
    notifications.script.push(503, 503);
    relay.start();
    await waitUntil(() => store.outboxStats().delivered === 3, { what: 'three deliveries' });
    const orderIds = notifications.calls.map((c) => (c.body as { data: { orderId: string } }).data.orderId);
    expect(orderIds).toEqual([ids[0], ids[0], ids[0], ids[1], ids[2]]);
    expect(notifications.calls.every((c) => c.method === 'POST' && c.path === '/events')).toBe(true);
    // The same event id on every attempt, so the receiver can de-duplicate.
    const firstIds = notifications.calls.slice(0, 3).map((c) => (c.body as { id: string }).id);
    expect(new Set(firstIds).size).toBe(1);
  });

  it('sets aside an event the receiver refuses (4xx) and goes on with the rest', async () => {
    confirmedOrder(1);
    const second = confirmedOrder(2);
    notifications.script.push(422);
    relay.start();
    await waitUntil(() => store.outboxStats().delivered === 1, { what: 'the second delivery' });
    expect(store.outboxStats()).toEqual({ pending: 0, delivered: 1, dead: 1 });
    expect((notifications.calls[1]!.body as { data: { orderId: string } }).data.orderId).toBe(second);
  });

  it('retries an event the mesh could not deliver (a sidecar-made 404 no-route), instead of setting it aside', async () => {
    const id = confirmedOrder(1);
    notifications.script.push({ status: 404, headers: { 'x-skein-reason': 'no-route' } }, { status: 403, headers: { 'x-skein-reason': 'denied' } });
    relay.start();
    await waitUntil(() => store.outboxStats().delivered === 1, { what: 'the delivery after the mesh recovers' });
    expect(store.outboxStats()).toEqual({ pending: 0, delivered: 1, dead: 0 });
    expect(notifications.calls.map((c) => (c.body as { data: { orderId: string } }).data.orderId)).toEqual([id, id, id]);
  });

  it('delivers an event written while idle as soon as it is kicked, not at the next poll', async () => {
    relay = new OutboxRelay(store, mesh.http('notifications'), pino({ level: 'silent' }), { baseBackoffMs: 20, maxBackoffMs: 40, idlePollMs: 60_000, batchSize: 2 });
    relay.start();
    await new Promise((r) => setTimeout(r, 30));
    confirmedOrder(1);
    relay.kick();
    await waitUntil(() => store.outboxStats().delivered === 1, { what: 'delivery' });
    expect(notifications.calls).toHaveLength(1);
  });
});
