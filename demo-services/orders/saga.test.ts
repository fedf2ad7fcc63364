import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Mesh } from '../shared/mesh.js';
import { OrderSaga } from './saga.js';
import { OrderStore } from './store.js';
import { ScriptedService } from './test-fakes.js';

let dir: string;
let store: OrderStore;
let inventory: ScriptedService;
let payments: ScriptedService;
let mesh: Mesh;
let saga: OrderSaga;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'skein-saga-'));
  store = new OrderStore(dir);
  inventory = new ScriptedService();
  payments = new ScriptedService(() => ({ status: 'captured' }));
  mesh = new Mesh({ DEMO_DIRECT_INVENTORY: await inventory.start(), DEMO_DIRECT_PAYMENTS: await payments.start() });
  saga = new OrderSaga({ store, inventory: mesh.http('inventory'), payments: mesh.http('payments'), log: pino({ level: 'silent' }), compensationMaxBackoffMs: 20 });
});
afterEach(async () => {
  await mesh.close();
  await Promise.all([inventory.stop(), payments.stop()]);
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const newOrder = () => store.createPending({ idempotencyKey: 'k', requestHash: 'h', userId: 'u1', currency: 'USD', items: [{ productId: 'p1', name: 'x', quantity: 2, unitPriceCents: 150 }] });
const steps = (id: string) => store.get(id)!.steps.map((s) => `${s.step}:${s.outcome}`);

describe('OrderSaga', () => {
  it('keys the reservation and the charge by the order id', async () => {
    const order = await saga.run(newOrder().id);
    expect(order.status).toBe('confirmed');
    expect(inventory.calls[0]).toMatchObject({ path: '/reservations', body: { reservationId: order.id, items: [{ productId: 'p1', quantity: 2 }] } });
    expect(payments.calls[0]).toMatchObject({ path: '/charges', headers: { 'idempotency-key': order.id }, body: { userId: 'u1', amountCents: 300 } });
  });

  it('sends a refund with its charge\'s Idempotency-Key, so payments\' ring-hash takes it where the charge went', async () => {
    payments.script.push(503); // charge: outcome unknown, so a refund is owed
    const order = await saga.run(newOrder().id);
    expect(steps(order.id)).toEqual(['reserve:ok', 'charge:failed', 'refund:ok', 'release:ok']);
    expect(payments.calls[1]).toMatchObject({ path: `/charges/${order.id}/refund`, headers: { 'idempotency-key': order.id } });
  });

  it('does not undo a step the service refused (4xx), only the ones before it', async () => {
    payments.script.push(402);
    const order = await saga.run(newOrder().id);
    expect(order.status).toBe('cancelled');
    expect(steps(order.id)).toEqual(['reserve:ok', 'charge:failed', 'release:ok']);
    expect(payments.calls).toHaveLength(1);
  });

  it('keeps retrying a compensation that fails until it succeeds', async () => {
    payments.script.push(503); // charge: outcome unknown, so refund and release are owed
    inventory.script.push(201, 503, 503); // reserve ok; release fails twice
    const order = await saga.run(newOrder().id);
    expect(order.status).toBe('cancelled');
    expect(steps(order.id)).toEqual(['reserve:ok', 'charge:failed', 'refund:ok', 'release:failed']);
    const deadline = Date.now() + 5_000;
    while (store.compensationsOwed(order.id).length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
      await saga.runDueCompensations();
    }
    expect(store.compensationsOwed(order.id)).toEqual([]);
    expect(steps(order.id)).toEqual(['reserve:ok', 'charge:failed', 'refund:ok', 'release:failed', 'release:failed', 'release:ok']);
    expect(inventory.calls.filter((c) => c.path.endsWith('/release'))).toHaveLength(3);
  });

  it('refunds too when a resumed order fails, if the crashed run had reserved (it may have charged)', async () => {
    const id = newOrder().id;
    store.recordStep(id, 'reserve', 'ok'); // what the crashed run got to, before its charge went out
    inventory.script.push(503); // the replayed reservation: outcome unknown
    const order = await saga.run(id, {}, true);
    expect(order.status).toBe('cancelled');
    expect(steps(id)).toEqual(['reserve:ok', 'reserve:failed', 'refund:ok', 'release:ok']);
    expect(payments.calls.map((c) => c.path)).toEqual([`/charges/${id}/refund`]);
  });

  it('owes no refund when a fresh order fails at the reservation', async () => {
    inventory.script.push(503);
    const order = await saga.run(newOrder().id);
    expect(order.status).toBe('cancelled');
    expect(steps(order.id)).toEqual(['reserve:failed', 'release:ok']);
    expect(payments.calls).toHaveLength(0);
  });

  it('leaves a resumed order pending while its calls cannot leave the process, and cancels a fresh one', async () => {
    const closed = new ScriptedService();
    const port = await closed.start();
    await closed.stop(); // nothing listens there now: connections are refused
    const offline = new Mesh({ DEMO_DIRECT_INVENTORY: port, DEMO_DIRECT_PAYMENTS: port });
    const cut = new OrderSaga({ store, inventory: offline.http('inventory'), payments: offline.http('payments'), log: pino({ level: 'silent' }), compensationMaxBackoffMs: 20 });
    try {
      const id = newOrder().id;
      const resumed = await cut.run(id, {}, true);
      expect(resumed.status).toBe('pending');
      expect((await cut.run(id, {}, true)).status).toBe('pending');
      expect(store.compensationsOwed(id)).toEqual([]);
      expect(steps(id)).toEqual([]); // the tries that could not leave the process leave no trace
      // Once the mesh answers, the same resumed run goes through.
      expect((await saga.run(id, {}, true)).status).toBe('confirmed');
      expect(steps(id)).toEqual(['reserve:ok', 'charge:ok', 'confirm:ok']);

      const fresh = store.createPending({ idempotencyKey: 'k2', requestHash: 'h', userId: 'u1', currency: 'USD', items: [{ productId: 'p1', name: 'x', quantity: 1, unitPriceCents: 150 }] });
      expect((await cut.run(fresh.id)).status).toBe('cancelled');
    } finally {
      await offline.close();
    }
  });

  it('leaves a resumed order pending while the mesh has no route or endpoint for a service yet (a whole shop restarting)', async () => {
    const id = newOrder().id;
    store.recordStep(id, 'reserve', 'ok'); // the crashed run reserved, and may have charged
    inventory.script.push({ status: 503, headers: { 'x-skein-reason': 'no-healthy-endpoints' } }, { status: 404, headers: { 'x-skein-reason': 'no-route' } });
    expect((await saga.run(id, {}, true)).status).toBe('pending');
    expect((await saga.run(id, {}, true)).status).toBe('pending');
    expect(store.compensationsOwed(id)).toEqual([]);
    expect(payments.calls).toHaveLength(0); // no refund of a charge that may have gone through
    expect((await saga.run(id, {}, true)).status).toBe('confirmed');
    expect(steps(id)).toEqual(['reserve:ok', 'reserve:ok', 'charge:ok', 'confirm:ok']);
  });

  it('cancels a resumed order when the answer may have come after delivery (a sidecar timeout)', async () => {
    const id = newOrder().id;
    inventory.script.push({ status: 504, headers: { 'x-skein-reason': 'timeout' } });
    expect((await saga.run(id, {}, true)).status).toBe('cancelled');
    expect(steps(id)).toEqual(['reserve:failed', 'release:ok']);
  });

  it('never runs an order\'s compensations twice at once (saga and sweeper)', async () => {
    payments.script.push(503);
    const running = saga.run(newOrder().id);
    await new Promise((r) => setTimeout(r, 20));
    payments.delayMs = 150; // hold the refund in flight while the sweeper looks
    const sweeps: Promise<void>[] = [];
    while (payments.calls.length < 2) {
      sweeps.push(saga.runDueCompensations());
      await new Promise((r) => setTimeout(r, 10));
    }
    sweeps.push(saga.runDueCompensations());
    const order = await running;
    await Promise.all(sweeps);
    expect(steps(order.id)).toEqual(['reserve:ok', 'charge:failed', 'refund:ok', 'release:ok']);
    expect(payments.calls.filter((c) => c.path.endsWith('/refund'))).toHaveLength(1);
  });
});
