/**
 * `inventory`: stock per product and reservations against it. A reservation is all or
 * nothing, keyed by the caller's id (orders uses the order id) so a retried reserve never
 * takes stock twice; releasing gives the stock back once. Releasing an id never reserved
 * leaves a tombstone, so a reserve that arrives late (after its saga gave up) is refused.
 */
import { z } from 'zod';
import { openDatabase, type Db } from '../shared/db.js';
import { HttpError } from '../shared/http-errors.js';
import { Router } from '../shared/http-server.js';
import { httpApp, type ServiceDefinition } from '../shared/service.js';
import { validate } from '../shared/validate.js';

const SEED_STOCK: Record<string, number> = { p1: 500, p2: 800, p3: 600, p4: 200, p5: 1000, p6: 300 };

const ReserveBody = z
  .object({
    reservationId: z.string().min(1).max(100),
    items: z
      .array(z.object({ productId: z.string().min(1).max(100), quantity: z.number().int().positive().max(10_000) }).strict())
      .min(1)
      .max(100),
  })
  .strict();

const StockBody = z.object({ available: z.number().int().min(0).max(1_000_000_000) }).strict();

interface ReservationRow {
  id: string;
  status: 'reserved' | 'released';
  created_at: string;
  updated_at: string;
}

function migrate(db: Db): void {
  db.exec(`
    CREATE TABLE stock (
      product_id TEXT PRIMARY KEY,
      available INTEGER NOT NULL CHECK (available >= 0)
    );
    CREATE TABLE reservations (
      id TEXT PRIMARY KEY,
      status TEXT NOT NULL CHECK (status IN ('reserved', 'released')),
      created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
      updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE TABLE reservation_items (
      reservation_id TEXT NOT NULL REFERENCES reservations(id),
      product_id TEXT NOT NULL,
      quantity INTEGER NOT NULL CHECK (quantity > 0),
      PRIMARY KEY (reservation_id, product_id)
    );`);
  const insert = db.prepare('INSERT INTO stock (product_id, available) VALUES (?, ?)');
  for (const [id, n] of Object.entries(SEED_STOCK)) insert.run(id, n);
}

export const inventory: ServiceDefinition = {
  name: 'inventory',
  start({ dataDir, log }) {
    const db = openDatabase(dataDir, 'inventory.db', [migrate]);
    const q = {
      allStock: db.prepare<[], { product_id: string; available: number }>('SELECT product_id, available FROM stock ORDER BY product_id'),
      stockOf: db.prepare<[string], { available: number }>('SELECT available FROM stock WHERE product_id = ?'),
      take: db.prepare<[number, string, number]>('UPDATE stock SET available = available - ? WHERE product_id = ? AND available >= ?'),
      give: db.prepare<[number, string]>('UPDATE stock SET available = available + ? WHERE product_id = ?'),
      setStock: db.prepare<[string, number]>('INSERT INTO stock (product_id, available) VALUES (?, ?) ON CONFLICT(product_id) DO UPDATE SET available = excluded.available'),
      reservation: db.prepare<[string], ReservationRow>('SELECT * FROM reservations WHERE id = ?'),
      items: db.prepare<[string], { product_id: string; quantity: number }>('SELECT product_id, quantity FROM reservation_items WHERE reservation_id = ? ORDER BY product_id'),
      insertReservation: db.prepare<[string, string]>('INSERT INTO reservations (id, status) VALUES (?, ?)'),
      insertItem: db.prepare<[string, string, number]>('INSERT INTO reservation_items (reservation_id, product_id, quantity) VALUES (?, ?, ?)'),
      markReleased: db.prepare<[string]>("UPDATE reservations SET status = 'released', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?"),
    };

    const reservationJson = (row: ReservationRow) => ({
      id: row.id,
      status: row.status,
      items: q.items.all(row.id).map((i) => ({ productId: i.product_id, quantity: i.quantity })),
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    });

    const reserve = db.transaction((body: z.infer<typeof ReserveBody>): { status: number; body: unknown } => {
      const existing = q.reservation.get(body.reservationId);
      if (existing) {
        if (existing.status === 'released') {
          throw new HttpError(409, 'reservation-released', `reservation "${body.reservationId}" was already released`);
        }
        return { status: 200, body: reservationJson(existing) };
      }
      const seen = new Set<string>();
      for (const item of body.items) {
        if (seen.has(item.productId)) throw new HttpError(422, 'invalid-request', `items: product "${item.productId}" is listed twice`);
        seen.add(item.productId);
        const stock = q.stockOf.get(item.productId);
        if (!stock) throw new HttpError(422, 'unknown-product', `no stock record for product "${item.productId}"`);
        if (q.take.run(item.quantity, item.productId, item.quantity).changes === 0) {
          // Throwing rolls back the whole transaction: all items or none.
          throw new HttpError(409, 'insufficient-stock', `only ${stock.available} of product "${item.productId}" in stock, ${item.quantity} requested`, {
            productId: item.productId,
            available: stock.available,
            requested: item.quantity,
          });
        }
      }
      q.insertReservation.run(body.reservationId, 'reserved');
      for (const item of body.items) q.insertItem.run(body.reservationId, item.productId, item.quantity);
      return { status: 201, body: reservationJson(q.reservation.get(body.reservationId)!) };
    });

    const release = db.transaction((id: string) => {
      const existing = q.reservation.get(id);
      if (!existing) {
        q.insertReservation.run(id, 'released');
      } else if (existing.status === 'reserved') {
        for (const item of q.items.all(id)) q.give.run(item.quantity, item.product_id);
        q.markReleased.run(id);
      }
      return reservationJson(q.reservation.get(id)!);
    });

    const router = new Router()
      .add('GET', '/health', () => ({ body: { status: 'ok', service: 'inventory' } }))
      .add('GET', '/stock', ({ query }) => {
        const wanted = query.get('ids')?.split(',').filter(Boolean);
        const stock: Record<string, number> = {};
        for (const row of q.allStock.all()) if (!wanted || wanted.includes(row.product_id)) stock[row.product_id] = row.available;
        return { body: { stock } };
      })
      .add('POST', '/reservations', async (req) => reserve(validate(ReserveBody, await req.json())))
      .add('GET', '/reservations/:id', ({ params }) => {
        const row = q.reservation.get(params.id!);
        if (!row) throw new HttpError(404, 'reservation-not-found', `no reservation with id "${params.id}"`);
        return { body: reservationJson(row) };
      })
      .add('POST', '/reservations/:id/release', ({ params }) => ({ body: release(params.id!) }))
      .add('PUT', '/admin/stock/:productId', async (req) => {
        const { available } = validate(StockBody, await req.json());
        q.setStock.run(req.params.productId!, available);
        log.info({ productId: req.params.productId, available }, 'stock set');
        return { body: { productId: req.params.productId, available } };
      });
    return httpApp(router.listener(log), () => void db.close());
  },
};
