/**
 * The orders database: orders with their items and saga steps, the compensations still owed
 * for cancelled orders, and the outbox. Every status change that others must hear about
 * writes its event to the outbox in the same transaction, so an event exists exactly when
 * its state change does.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { openDatabase, type Db } from '../shared/db.js';

export type OrderStatus = 'pending' | 'confirmed' | 'cancelled';
export type StepName = 'reserve' | 'charge' | 'confirm' | 'refund' | 'release';
export type Compensation = 'refund' | 'release';

export interface NewOrder {
  idempotencyKey: string;
  requestHash: string;
  userId: string;
  currency: string;
  items: { productId: string; name: string; quantity: number; unitPriceCents: number }[];
}

export interface Order {
  id: string;
  idempotencyKey: string;
  userId: string;
  status: OrderStatus;
  reason?: string;
  items: { productId: string; name: string; quantity: number; unitPriceCents: number }[];
  totalCents: number;
  currency: string;
  steps: { step: StepName; outcome: 'ok' | 'failed'; detail?: string; at: string }[];
  createdAt: string;
  updatedAt: string;
}

export interface OutboxEvent {
  seq: number;
  id: string;
  type: string;
  payload: string;
  attempts: number;
  nextAttemptAt: number;
}

interface OrderRow {
  id: string;
  idempotency_key: string;
  request_hash: string;
  user_id: string;
  status: OrderStatus;
  reason: string | null;
  total_cents: number;
  currency: string;
  created_at: string;
  updated_at: string;
}

const NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/** The orders table's columns, as the first migration made them and the second keeps them. */
const ORDER_COLUMNS = `
      id TEXT PRIMARY KEY,
      idempotency_key TEXT NOT NULL,
      request_hash TEXT NOT NULL,
      user_id TEXT NOT NULL,
      status TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'cancelled')),
      reason TEXT,
      total_cents INTEGER NOT NULL,
      currency TEXT NOT NULL,
      created_at TEXT NOT NULL DEFAULT (${NOW}),
      updated_at TEXT NOT NULL DEFAULT (${NOW})`;

function createTables(db: Db): void {
  db.exec(`
    CREATE TABLE orders (${ORDER_COLUMNS},
      UNIQUE (idempotency_key)
    );
    CREATE INDEX orders_by_status ON orders (status);
    CREATE TABLE order_items (
      order_id TEXT NOT NULL REFERENCES orders(id),
      product_id TEXT NOT NULL,
      name TEXT NOT NULL,
      quantity INTEGER NOT NULL CHECK (quantity > 0),
      unit_price_cents INTEGER NOT NULL CHECK (unit_price_cents >= 0),
      PRIMARY KEY (order_id, product_id)
    );
    CREATE TABLE order_steps (
      order_id TEXT NOT NULL REFERENCES orders(id),
      seq INTEGER NOT NULL,
      step TEXT NOT NULL,
      outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'failed')),
      detail TEXT,
      at TEXT NOT NULL DEFAULT (${NOW}),
      PRIMARY KEY (order_id, seq)
    );
    CREATE TABLE compensations (
      order_id TEXT NOT NULL REFERENCES orders(id),
      action TEXT NOT NULL CHECK (action IN ('refund', 'release')),
      position INTEGER NOT NULL,
      done INTEGER NOT NULL DEFAULT 0,
      attempts INTEGER NOT NULL DEFAULT 0,
      next_attempt_at INTEGER NOT NULL DEFAULT 0,
      PRIMARY KEY (order_id, action)
    );
    CREATE TABLE outbox (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      event_id TEXT NOT NULL UNIQUE,
      type TEXT NOT NULL,
      payload TEXT NOT NULL,
      created_at TEXT NOT NULL DEFAULT (${NOW}),
      attempts INTEGER NOT NULL DEFAULT 0,
      next_attempt_at INTEGER NOT NULL DEFAULT 0,
      last_error TEXT,
      delivered_at TEXT,
      dead_at TEXT
    );`);
}

/**
 * Idempotency keys are the customer's own, as a payment API scopes them per account: two
 * customers who happen to send the same key place two orders. SQLite cannot drop a UNIQUE
 * constraint, so the table is rebuilt (openDatabase runs this with foreign keys off, then checks them).
 */
function scopeKeysPerUser(db: Db): void {
  db.exec(`
    CREATE TABLE orders_scoped (${ORDER_COLUMNS},
      UNIQUE (user_id, idempotency_key)
    );
    INSERT INTO orders_scoped SELECT * FROM orders;
    DROP TABLE orders;
    ALTER TABLE orders_scoped RENAME TO orders;
    CREATE INDEX orders_by_status ON orders (status);`);
}

/** In order, forever: a database records how many of these it has run. */
export const ORDERS_MIGRATIONS = [createTables, scopeKeysPerUser];

function prepareQueries(db: Db) {
  return {
    order: db.prepare<[string], OrderRow>('SELECT * FROM orders WHERE id = ?'),
    byKey: db.prepare<[string, string], OrderRow>('SELECT * FROM orders WHERE user_id = ? AND idempotency_key = ?'),
    pending: db.prepare<[], { id: string }>("SELECT id FROM orders WHERE status = 'pending' ORDER BY created_at"),
    items: db.prepare<[string], { product_id: string; name: string; quantity: number; unit_price_cents: number }>(
      'SELECT product_id, name, quantity, unit_price_cents FROM order_items WHERE order_id = ? ORDER BY rowid',
    ),
    steps: db.prepare<[string], { step: StepName; outcome: 'ok' | 'failed'; detail: string | null; at: string }>(
      'SELECT step, outcome, detail, at FROM order_steps WHERE order_id = ? ORDER BY seq',
    ),
    insertOrder: db.prepare(
      `INSERT INTO orders (id, idempotency_key, request_hash, user_id, status, total_cents, currency) VALUES (@id, @idempotencyKey, @requestHash, @userId, 'pending', @totalCents, @currency)`,
    ),
    insertItem: db.prepare('INSERT INTO order_items (order_id, product_id, name, quantity, unit_price_cents) VALUES (?, ?, ?, ?, ?)'),
    insertStep: db.prepare(
      'INSERT INTO order_steps (order_id, seq, step, outcome, detail) VALUES (@orderId, (SELECT COALESCE(MAX(seq), 0) + 1 FROM order_steps WHERE order_id = @orderId), @step, @outcome, @detail)',
    ),
    setStatus: db.prepare<[OrderStatus, string | null, string]>(`UPDATE orders SET status = ?, reason = ?, updated_at = ${NOW} WHERE id = ? AND status = 'pending'`),
    insertCompensation: db.prepare<[string, Compensation, number]>('INSERT OR IGNORE INTO compensations (order_id, action, position) VALUES (?, ?, ?)'),
    ordersOwingCompensation: db.prepare<[number], { order_id: string }>('SELECT DISTINCT order_id FROM compensations WHERE done = 0 AND next_attempt_at <= ? ORDER BY order_id'),
  compensationsOf: db.prepare<[string], { action: Compensation; attempts: number; next_attempt_at: number }>(
    'SELECT action, attempts, next_attempt_at FROM compensations WHERE order_id = ? AND done = 0 ORDER BY position',
  ),
  compensationDone: db.prepare<[string, string]>('UPDATE compensations SET done = 1 WHERE order_id = ? AND action = ?'),
    compensationRetry: db.prepare<[number, string, string]>('UPDATE compensations SET attempts = attempts + 1, next_attempt_at = ? WHERE order_id = ? AND action = ?'),
    insertEvent: db.prepare<[string, string, string]>('INSERT INTO outbox (event_id, type, payload) VALUES (?, ?, ?)'),
    undelivered: db.prepare<[number], { seq: number; event_id: string; type: string; payload: string; attempts: number; next_attempt_at: number }>(
      'SELECT seq, event_id, type, payload, attempts, next_attempt_at FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL ORDER BY seq LIMIT ?',
    ),
    delivered: db.prepare<[number]>(`UPDATE outbox SET delivered_at = ${NOW}, attempts = attempts + 1 WHERE seq = ?`),
    retryEvent: db.prepare<[number, string, number]>('UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE seq = ?'),
    deadEvent: db.prepare<[string, number]>(`UPDATE outbox SET dead_at = ${NOW}, attempts = attempts + 1, last_error = ? WHERE seq = ?`),
    outboxStats: db.prepare<[], { pending: number; delivered: number; dead: number }>(
      'SELECT COALESCE(SUM(delivered_at IS NULL AND dead_at IS NULL), 0) AS pending, COALESCE(SUM(delivered_at IS NOT NULL), 0) AS delivered, COALESCE(SUM(dead_at IS NOT NULL), 0) AS dead FROM outbox',
    ),
  };
}

export class OrderStore {
  private readonly db: Db;
  private readonly q: ReturnType<typeof prepareQueries>;

  constructor(dataDir: string) {
    this.db = openDatabase(dataDir, 'orders.db', ORDERS_MIGRATIONS);
    this.q = prepareQueries(this.db);
  }

  /** The user's order placed with this key, if any: keys are scoped per user. */
  byIdempotencyKey(userId: string, key: string): { order: Order; requestHash: string } | undefined {
    const row = this.q.byKey.get(userId, key);
    return row && { order: this.toOrder(row), requestHash: row.request_hash };
  }

  get(id: string): Order | undefined {
    const row = this.q.order.get(id);
    return row && this.toOrder(row);
  }

  pendingOrderIds(): string[] {
    return this.q.pending.all().map((r) => r.id);
  }

  createPending(order: NewOrder): Order {
    const id = `ord_${randomBytes(8).toString('hex')}`;
    const totalCents = order.items.reduce((sum, i) => sum + i.quantity * i.unitPriceCents, 0);
    this.db.transaction(() => {
      this.q.insertOrder.run({ id, idempotencyKey: order.idempotencyKey, requestHash: order.requestHash, userId: order.userId, totalCents, currency: order.currency });
      for (const i of order.items) this.q.insertItem.run(id, i.productId, i.name, i.quantity, i.unitPriceCents);
    })();
    return this.get(id)!;
  }

  recordStep(orderId: string, step: StepName, outcome: 'ok' | 'failed', detail?: string): void {
    this.q.insertStep.run({ orderId, step, outcome, detail: detail ?? null });
  }

  /** pending → confirmed, with the confirm step and OrderCreated in one transaction. */
  confirm(orderId: string): void {
    this.db.transaction(() => {
      if (this.q.setStatus.run('confirmed', null, orderId).changes === 0) return;
      this.recordStep(orderId, 'confirm', 'ok');
      this.addEvent('OrderCreated', this.get(orderId)!);
    })();
  }

  /**
   * pending → cancelled with its reason, the compensations owed (in the order they must run)
   * and OrderCancelled, in one transaction.
   */
  cancel(orderId: string, reason: string, owed: readonly Compensation[]): void {
    this.db.transaction(() => {
      if (this.q.setStatus.run('cancelled', reason, orderId).changes === 0) return;
      owed.forEach((action, position) => this.q.insertCompensation.run(orderId, action, position));
      this.addEvent('OrderCancelled', this.get(orderId)!);
    })();
  }

  /** Compensations still owed for one order, in the order they must run. */
  compensationsOwed(orderId: string): { action: Compensation; attempts: number; nextAttemptAt: number }[] {
    return this.q.compensationsOf.all(orderId).map((r) => ({ action: r.action, attempts: r.attempts, nextAttemptAt: r.next_attempt_at }));
  }

  /** Orders with a compensation whose retry time has come. */
  ordersOwingCompensation(now: number): string[] {
    return this.q.ordersOwingCompensation.all(now).map((r) => r.order_id);
  }

  compensationDone(orderId: string, action: Compensation): void {
    this.db.transaction(() => {
      this.q.compensationDone.run(orderId, action);
      this.recordStep(orderId, action, 'ok');
    })();
  }

  compensationFailed(orderId: string, action: Compensation, retryAt: number, detail: string): void {
    this.db.transaction(() => {
      this.q.compensationRetry.run(retryAt, orderId, action);
      this.recordStep(orderId, action, 'failed', `${detail}; will retry`);
    })();
  }

  /** Undelivered events in outbox order (the relay delivers them in this order). */
  undeliveredEvents(limit: number): OutboxEvent[] {
    return this.q.undelivered.all(limit).map((r) => ({ seq: r.seq, id: r.event_id, type: r.type, payload: r.payload, attempts: r.attempts, nextAttemptAt: r.next_attempt_at }));
  }

  eventDelivered(seq: number): void {
    this.q.delivered.run(seq);
  }

  eventRetry(seq: number, nextAttemptAt: number, error: string): void {
    this.q.retryEvent.run(nextAttemptAt, error, seq);
  }

  /** The receiver refused the event for good (a 4xx): keep it, stop retrying it. */
  eventDead(seq: number, error: string): void {
    this.q.deadEvent.run(error, seq);
  }

  outboxStats(): { pending: number; delivered: number; dead: number } {
    return this.q.outboxStats.get()!;
  }

  close(): void {
    this.db.close();
  }

  private addEvent(type: 'OrderCreated' | 'OrderCancelled', order: Order): void {
    const id = randomUUID();
    const event = {
      id,
      type,
      occurredAt: new Date().toISOString(),
      data: {
        orderId: order.id,
        userId: order.userId,
        totalCents: order.totalCents,
        currency: order.currency,
        itemCount: order.items.reduce((n, i) => n + i.quantity, 0),
        ...(order.reason ? { reason: order.reason } : {}),
      },
    };
    this.q.insertEvent.run(id, type, JSON.stringify(event));
  }

  private toOrder(row: OrderRow): Order {
    return {
      id: row.id,
      idempotencyKey: row.idempotency_key,
      userId: row.user_id,
      status: row.status,
      ...(row.reason ? { reason: row.reason } : {}),
      items: this.q.items.all(row.id).map((i) => ({ productId: i.product_id, name: i.name, quantity: i.quantity, unitPriceCents: i.unit_price_cents })),
      totalCents: row.total_cents,
      currency: row.currency,
      steps: this.q.steps.all(row.id).map((s) => ({ step: s.step, outcome: s.outcome, ...(s.detail ? { detail: s.detail } : {}), at: s.at })),
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    };
  }
}
