/**
 * `payments`: charges and refunds, keyed by the caller's `Idempotency-Key` (orders uses the
 * order id) so a retried charge never takes money twice. Refunding a key that was never
 * charged leaves a `voided` record, so a charge arriving after its saga gave up is refused.
 * Injected latency and errors (admin knobs) apply to charges only, before anything is
 * recorded: a failed charge takes no money.
 */
import { z } from 'zod';
import { openDatabase, type Db } from '../shared/db.js';
import { HttpError } from '../shared/http-errors.js';
import { Router, type Request } from '../shared/http-server.js';
import { UsageError } from '../shared/options.js';
import { httpApp, type ServiceDefinition } from '../shared/service.js';
import { validate } from '../shared/validate.js';
import { FaultKnobs, FaultsBody } from './faults.js';

const ChargeBody = z
  .object({
    userId: z.string().min(1).max(100),
    amountCents: z.number().int().positive().max(100_000_000),
    currency: z.string().length(3).default('USD'),
  })
  .strict();

interface ChargeRow {
  idempotency_key: string;
  user_id: string | null;
  amount_cents: number | null;
  currency: string | null;
  status: 'captured' | 'refunded' | 'voided';
  created_at: string;
  updated_at: string;
}

function migrate(db: Db): void {
  db.exec(`CREATE TABLE charges (
    idempotency_key TEXT PRIMARY KEY,
    user_id TEXT,
    amount_cents INTEGER,
    currency TEXT,
    status TEXT NOT NULL CHECK (status IN ('captured', 'refunded', 'voided')),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
  );
  CREATE INDEX charges_by_user ON charges (user_id);`);
}

const chargeJson = (r: ChargeRow) => ({
  id: r.idempotency_key,
  userId: r.user_id,
  amountCents: r.amount_cents,
  currency: r.currency,
  status: r.status,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

function idempotencyKey(req: Request): string {
  const key = req.headers['idempotency-key'];
  if (typeof key !== 'string' || key.length === 0 || key.length > 200) {
    throw new HttpError(400, 'missing-idempotency-key', 'send an Idempotency-Key header (1-200 characters) with every charge');
  }
  return key;
}

export const payments: ServiceDefinition = {
  name: 'payments',
  flags: {
    'latency-ms': { description: 'initial injected latency per charge, in ms', default: '0' },
    'error-rate': { description: 'initial fraction of charges that fail with 503 (0..1)', default: '0' },
    replica: { description: 'name of this replica, answered in a Payments-Replica header on every response', default: 'payments' },
  },
  start({ flags, dataDir, log }) {
    const initial = FaultsBody.safeParse({ latencyMs: Number(flags['latency-ms']), errorRate: Number(flags['error-rate']) });
    if (!initial.success) throw new UsageError('--latency-ms must be an integer 0..60000 and --error-rate a number 0..1');
    const faults = new FaultKnobs({ latencyMs: initial.data.latencyMs ?? 0, errorRate: initial.data.errorRate ?? 0 });
    const db = openDatabase(dataDir, 'payments.db', [migrate]);
    const q = {
      get: db.prepare<[string], ChargeRow>('SELECT * FROM charges WHERE idempotency_key = ?'),
      byUser: db.prepare<[string], ChargeRow>('SELECT * FROM charges WHERE user_id = ? ORDER BY created_at'),
      insert: db.prepare<[string, string | null, number | null, string | null, string]>(
        'INSERT INTO charges (idempotency_key, user_id, amount_cents, currency, status) VALUES (?, ?, ?, ?, ?)',
      ),
      setStatus: db.prepare<[string, string]>("UPDATE charges SET status = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE idempotency_key = ?"),
    };

    const charge = db.transaction((key: string, body: z.infer<typeof ChargeBody>) => {
      const existing = q.get.get(key);
      if (!existing) {
        q.insert.run(key, body.userId, body.amountCents, body.currency, 'captured');
        return { status: 201, body: chargeJson(q.get.get(key)!) };
      }
      if (existing.status === 'voided') throw new HttpError(409, 'charge-voided', `charge "${key}" was voided before it was made`);
      if (existing.user_id !== body.userId || existing.amount_cents !== body.amountCents || existing.currency !== body.currency) {
        throw new HttpError(422, 'idempotency-key-reused', `Idempotency-Key "${key}" was already used for a different charge`);
      }
      return { status: 200, body: chargeJson(existing), headers: { 'idempotent-replayed': 'true' } };
    });

    const refund = db.transaction((key: string) => {
      const existing = q.get.get(key);
      if (!existing) q.insert.run(key, null, null, null, 'voided');
      else if (existing.status === 'captured') q.setStatus.run('refunded', key);
      return chargeJson(q.get.get(key)!);
    });

    const router = new Router()
      .add('GET', '/health', () => ({ body: { status: 'ok', service: 'payments' } }))
      .add('POST', '/charges', async (req) => {
        const key = idempotencyKey(req);
        const body = validate(ChargeBody, await req.json());
        if (await faults.apply()) {
          throw new HttpError(503, 'payment-provider-unavailable', 'the payment provider failed (injected fault); nothing was charged');
        }
        // IMMEDIATE takes the write lock before the read: both payments instances share this
        // file, and a read-then-write (deferred) transaction fails with SQLITE_BUSY_SNAPSHOT
        // when the other instance commits in between, where busy_timeout cannot help.
        return charge.immediate(key, body);
      })
      .add('GET', '/charges', ({ query }) => {
        const userId = query.get('userId');
        if (!userId) throw new HttpError(400, 'missing-user-id', 'add ?userId=<id> to list charges');
        return { body: { charges: q.byUser.all(userId).map(chargeJson) } };
      })
      .add('GET', '/charges/:key', ({ params }) => {
        const row = q.get.get(params.key!);
        if (!row) throw new HttpError(404, 'charge-not-found', `no charge with key "${params.key}"`);
        return { body: chargeJson(row) };
      })
      .add('POST', '/charges/:key/refund', ({ params }) => ({ body: refund.immediate(params.key!) }))
      .add('GET', '/admin/faults', () => ({ body: faults.get() }))
      .add('PUT', '/admin/faults', async (req) => {
        const now = faults.set(validate(FaultsBody, await req.json()));
        log.info(now, 'faults set');
        return { body: now };
      });
    // Replicas share one database and answer alike: the header is how a caller (or a demo
    // scenario) tells which one a request reached.
    const listener = router.listener(log);
    const replica = flags.replica!;
    return httpApp((req, res) => {
      res.setHeader('payments-replica', replica);
      listener(req, res);
    }, () => void db.close());
  },
};
