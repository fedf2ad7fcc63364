import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../shared/db.js';
import { ORDERS_MIGRATIONS, OrderStore, type NewOrder } from './store.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'skein-orders-store-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const newOrder = (userId: string, idempotencyKey: string): NewOrder => ({
  idempotencyKey,
  requestHash: 'h',
  userId,
  currency: 'USD',
  items: [{ productId: 'p1', name: 'x', quantity: 1, unitPriceCents: 100 }],
});

describe('OrderStore idempotency keys', () => {
  it('scopes keys per user: the same key from two users is two orders, from one user a conflict', () => {
    const store = new OrderStore(dir);
    try {
      const a = store.createPending(newOrder('u1', 'k'));
      const b = store.createPending(newOrder('u2', 'k'));
      expect(b.id).not.toBe(a.id);
      expect(store.byIdempotencyKey('u1', 'k')?.order.id).toBe(a.id);
      expect(store.byIdempotencyKey('u2', 'k')?.order.id).toBe(b.id);
      expect(store.byIdempotencyKey('u3', 'k')).toBeUndefined();
      expect(() => store.createPending(newOrder('u1', 'k'))).toThrow(/UNIQUE/);
      expect(store.pendingOrderIds()).toEqual([a.id, b.id]);
    } finally {
      store.close();
    }
  });

  it('brings a database an older demo made (keys unique across users) up to date, keeping its orders', () => {
    const old = openDatabase(dir, 'orders.db', ORDERS_MIGRATIONS.slice(0, 1));
    old.exec(`
      INSERT INTO orders (id, idempotency_key, request_hash, user_id, status, total_cents, currency) VALUES ('ord_old', 'k', 'h', 'u1', 'confirmed', 100, 'USD');
      INSERT INTO order_items (order_id, product_id, name, quantity, unit_price_cents) VALUES ('ord_old', 'p1', 'x', 1, 100);
      INSERT INTO order_steps (order_id, seq, step, outcome) VALUES ('ord_old', 1, 'reserve', 'ok');`);
    old.close();

    const store = new OrderStore(dir);
    try {
      expect(store.get('ord_old')).toMatchObject({ status: 'confirmed', userId: 'u1', items: [{ productId: 'p1', quantity: 1 }], steps: [{ step: 'reserve', outcome: 'ok' }] });
      expect(store.byIdempotencyKey('u1', 'k')?.order.id).toBe('ord_old');
      const other = store.createPending(newOrder('u2', 'k'));
      expect(other.id).not.toBe('ord_old');
      expect(store.pendingOrderIds()).toEqual([other.id]);
    } finally {
      store.close();
    }
  });
});
