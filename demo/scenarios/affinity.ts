/**
 * Session affinity: payments is balanced by `ring-hash` on the Idempotency-Key header, so
 * every request about one charge (the charge, a replay of it, its refund) reaches the same
 * replica, from every sidecar, and `skein explain` names that replica before anything is
 * sent. Charges are sent as orders sends them, through orders' sidecar (the one caller
 * intentions let through), for a made-up customer, each refunded at the end; each answer's
 * Payments-Replica header says which replica took it.
 */
import { randomBytes } from 'node:crypto';
import type { DemoClient } from './demo-client.js';
import { checkpoint, type Scenario, type ScenarioIo } from './scenario.js';

/** Keys wanted on each replica, so both show up. */
const KEYS_PER_REPLICA = 2;
/** Keys explained at most while looking for them (a replica missing from the ring never gets one). */
const MAX_KEYS = 40;
/** The charge, then replays of it with the same key. */
const CHARGES_PER_KEY = 3;
const USER = 'affinity-demo';
/** A replica ejected by orders' sidecar takes none of its keys until the ejection ends. */
const EJECTION_WAIT_MS = 60_000;

interface Placement {
  readonly key: string;
  readonly endpoint: string;
  /** The instance `skein explain` names. */
  readonly replica: string;
}

/** Waits until orders' sidecar holds no payments endpoint ejected (an earlier outage may have left one), so each key goes where explain says. */
async function noEjections(demo: DemoClient, io: ScenarioIo): Promise<boolean> {
  const deadline = Date.now() + EJECTION_WAIT_MS;
  let said = false;
  for (;;) {
    const ejected = (await demo.explain('payments', 'POST', '/charges', [], 'orders')).ejectedEndpoints ?? [];
    if (ejected.length === 0) return true;
    if (!said) io.say(`orders' sidecar holds ${ejected.map((e) => e.endpoint).join(', ')} ejected (an earlier failure): waiting until it takes traffic again`);
    said = true;
    if (Date.now() > deadline || io.signal.aborted) return false;
    await io.hold(500);
  }
}

/** Keys (fresh for this run) and where explain says each goes, until every replica has KEYS_PER_REPLICA of them. */
async function placements(demo: DemoClient): Promise<Placement[]> {
  const replicas = demo.instancesOf('payments').map((i) => i.id);
  const prefix = `affinity-${randomBytes(3).toString('hex')}`;
  const chosen: Placement[] = [];
  for (let n = 1; n <= MAX_KEYS && replicas.some((r) => chosen.filter((p) => p.replica === r).length < KEYS_PER_REPLICA); n++) {
    const key = `${prefix}-${n}`;
    const endpoint = (await demo.explain('payments', 'POST', '/charges', [`idempotency-key:${key}`])).affinity?.endpoints[0]?.endpoint;
    if (!endpoint) continue;
    const replica = demo.instanceAt(endpoint)?.id ?? endpoint;
    if (chosen.filter((p) => p.replica === replica).length < KEYS_PER_REPLICA) chosen.push({ key, endpoint, replica });
  }
  return chosen;
}

export const affinity: Scenario = {
  name: 'affinity',
  summary: 'payments is ring-hashed on Idempotency-Key → every request with a key reaches the replica skein explain names',
  watch: () => [
    'npx skein explain payments POST /charges -H idempotency-key:KEY   (the replica a key goes to)',
    'npx skein tap payments --path /charges   (each row ends with the replica that took it)',
    'npx skein get services payments   (the two replicas and their endpoints)',
  ],
  async run(demo, io, { holdMs }) {
    const ready = await noEjections(demo, io);
    checkpoint(io);
    io.say('asking skein explain where keys go: npx skein explain payments POST /charges -H idempotency-key:KEY');
    const chosen = await placements(demo);
    for (const p of chosen) io.show(`${p.key} → ${p.replica} (${p.endpoint})`);
    const replicas = new Set(chosen.map((p) => p.replica));
    io.check(
      replicas.size === demo.instancesOf('payments').length,
      replicas.size === 0 ? 'skein explain names no replica for a key: is payments balanced by ring-hash?' : `keys go to ${[...replicas].sort().join(' and ')}: the ring spreads keys over every replica`,
    );

    io.say(`for each key: ${CHARGES_PER_KEY} charges (the first is made, the others replay it), then its refund, through orders' sidecar as orders sends them`);
    const strays: string[] = [];
    for (const p of chosen) {
      checkpoint(io);
      const seen: string[] = [];
      const headers = { 'idempotency-key': p.key };
      for (let n = 0; n < CHARGES_PER_KEY; n++) {
        const res = await demo.callAs('orders', 'payments', 'POST', '/charges', { headers, body: { userId: USER, amountCents: 100, currency: 'USD' } });
        seen.push(`${res.status} ${String(res.headers['payments-replica'] ?? '(no replica header)')}`);
      }
      const refund = await demo.callAs('orders', 'payments', 'POST', `/charges/${encodeURIComponent(p.key)}/refund`, { headers });
      seen.push(`refund ${refund.status} ${String(refund.headers['payments-replica'] ?? '(no replica header)')}`);
      io.show(`${p.key}: ${seen.join(', ')}`);
      if (!seen.every((s) => s.endsWith(` ${p.replica}`))) strays.push(p.key);
    }
    const requests = chosen.length * (CHARGES_PER_KEY + 1);
    io.check(
      chosen.length > 0 && strays.length === 0,
      strays.length === 0
        ? `all ${requests} requests reached the replica skein explain named for their key`
        : `${strays.length} key(s) reached another replica than explain named: ${strays.join(', ')}${ready ? '' : ' (a replica was still ejected)'}`,
    );
    await io.hold(holdMs);
  },
};
