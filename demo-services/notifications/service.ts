/**
 * `notifications`: receives order events (delivered at least once by the orders outbox
 * relay), keeps each once by event id, lists them per user, and appends one readable line
 * per new event to `<data-dir>/notifications.log` (what the customer would be sent).
 */
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { openDatabase, type Db } from '../shared/db.js';
import { HttpError } from '../shared/http-errors.js';
import { Router } from '../shared/http-server.js';
import { httpApp, type ServiceDefinition } from '../shared/service.js';
import { validate } from '../shared/validate.js';

const EventBody = z.object({
  id: z.string().min(1).max(200),
  type: z.string().min(1).max(100),
  occurredAt: z.string().min(1),
  data: z
    .object({
      orderId: z.string().min(1),
      userId: z.string().min(1),
      totalCents: z.number().int().optional(),
      itemCount: z.number().int().optional(),
      reason: z.string().optional(),
    })
    .passthrough(),
});

type OrderEvent = z.infer<typeof EventBody>;

interface NotificationRow {
  event_id: string;
  type: string;
  user_id: string;
  order_id: string;
  message: string;
  occurred_at: string;
  received_at: string;
}

function migrate(db: Db): void {
  db.exec(`CREATE TABLE notifications (
    event_id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    user_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    message TEXT NOT NULL,
    payload TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    received_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
  );
  CREATE INDEX notifications_by_user ON notifications (user_id, received_at);`);
}

const dollars = (cents: number | undefined) => (cents === undefined ? '' : ` for $${(cents / 100).toFixed(2)}`);

/** The sentence a customer would read. */
export function messageFor(e: OrderEvent): string {
  const { orderId, itemCount, totalCents, reason } = e.data;
  const items = itemCount === undefined ? '' : ` (${itemCount} item${itemCount === 1 ? '' : 's'})`;
  switch (e.type) {
    case 'OrderCreated':
      return `Your order ${orderId}${items} is confirmed${dollars(totalCents)}.`;
    case 'OrderCancelled':
      return `Your order ${orderId} was cancelled: ${reason ?? 'no reason given'}.`;
    default:
      return `${e.type} for order ${orderId}.`;
  }
}

const toJson = (r: NotificationRow) => ({
  eventId: r.event_id,
  type: r.type,
  userId: r.user_id,
  orderId: r.order_id,
  message: r.message,
  occurredAt: r.occurred_at,
  receivedAt: r.received_at,
});

export const notifications: ServiceDefinition = {
  name: 'notifications',
  start({ dataDir, log }) {
    const db = openDatabase(dataDir, 'notifications.db', [migrate]);
    const readableLog = join(dataDir, 'notifications.log');
    const insert = db.prepare(
      'INSERT OR IGNORE INTO notifications (event_id, type, user_id, order_id, message, payload, occurred_at) VALUES (@id, @type, @userId, @orderId, @message, @payload, @occurredAt)',
    );
    // Newest first, and the latest 50: under the demo's load a user's own order would otherwise sit
    // at the end of a list that only grows.
    const byUser = db.prepare<[string], NotificationRow>('SELECT * FROM notifications WHERE user_id = ? ORDER BY received_at DESC, event_id DESC LIMIT 50');

    const router = new Router()
      .add('GET', '/health', () => ({ body: { status: 'ok', service: 'notifications' } }))
      .add('POST', '/events', async (req) => {
        const event = validate(EventBody, await req.json(), 'invalid-event');
        const message = messageFor(event);
        const { changes } = insert.run({
          id: event.id,
          type: event.type,
          userId: event.data.userId,
          orderId: event.data.orderId,
          message,
          payload: JSON.stringify(event),
          occurredAt: event.occurredAt,
        });
        const duplicate = changes === 0;
        if (!duplicate) {
          appendFileSync(readableLog, `${new Date().toISOString()} to ${event.data.userId}: ${message}\n`);
          log.info({ eventId: event.id, type: event.type, userId: event.data.userId, orderId: event.data.orderId }, `notify ${event.data.userId}: ${message}`);
        }
        return { body: { accepted: true, duplicate } };
      })
      .add('GET', '/notifications', ({ query }) => {
        const userId = query.get('userId');
        if (!userId) throw new HttpError(400, 'missing-user-id', 'add ?userId=<id> to list a user\'s notifications');
        return { body: { userId, notifications: byUser.all(userId).map(toJson) } };
      });
    return httpApp(router.listener(log), () => void db.close());
  },
};
