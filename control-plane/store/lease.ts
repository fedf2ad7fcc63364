/**
 * Which control-plane replica drives canary rollouts. A rollout's loop judges and moves its
 * split step by step, so two replicas driving the same rollout would judge it twice and
 * race each other's saves: exactly one replica holds the lease and drives every rollout,
 * as Flagger's and Argo Rollouts' controllers run behind one leader election. On the file
 * store the data dir's lock already makes this the only replica; on Consul KV the lease is a
 * Consul lock (a session, TTL-renewed, acquiring one key), as `consul lock` and Vault's HA
 * mode take theirs, so a replica that dies is replaced once its session expires.
 */
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { consulStatus, describeConsulError, type ConsulConnection } from '../../common/consul/client.js';
import type { Logger } from '../../common/log.js';
import { backoffDelay } from '../../common/backoff.js';

export interface LeaseHandlers {
  /** This replica took the lease: it drives from now on. */
  taken(): Promise<void>;
  /** This replica lost the lease: it must stop driving before anything else happens. */
  lost(): Promise<void>;
}

export interface Lease {
  /** Where the lease lives, for messages that send an operator there. */
  readonly location: string;
  /** The admin URL its holder wrote (this replica's own while it holds it); undefined when nobody holds it or it cannot be read now. */
  holder(): Promise<string | undefined>;
  /** Why this replica's last try to take or watch the lease failed (an ACL token without `session:write`, say); undefined after one that did not. */
  readonly trouble: string | undefined;
  /**
   * Whether other replicas are told who holds it, so that taking it needs this replica's admin
   * URL (`me`), known once the admin API listens. One that needs none (the file store's) is
   * taken before that, so a restart's rollouts are resumed by the time the admin API answers.
   */
  readonly namesHolder: boolean;
  /**
   * Competes for the lease from now on as `me`: the handlers run one at a time, in order,
   * `taken` each time it is taken and `lost` each time it is lost. Resolves once the first try
   * is decided: the lease taken (and `taken` done), or not.
   */
  start(me: string | undefined, on: LeaseHandlers): Promise<void>;
  /** Stops competing and gives the lease up, `lost` first when held, so another replica takes it at once and never while this one drives. */
  close(): Promise<void>;
}

/** The file store's: one process owns the data dir (its lock), so it holds the lease from the start. */
export class SoleLease implements Lease {
  readonly location = 'the data dir (one control plane)';
  readonly trouble = undefined;
  readonly namesHolder = false;

  /** Nobody else asks: the only replica drives from its start. */
  holder(): Promise<string | undefined> {
    return Promise.resolve(undefined);
  }

  start(_me: string | undefined, on: LeaseHandlers): Promise<void> {
    return on.taken();
  }

  async close(): Promise<void> {}
}

/** The Consul KV key of the lock, under the store's prefix so the same ACL policy covers it. */
export const CONSUL_LEASE_KEY = 'skein/leases/canary-driver';
/** Consul's shortest session TTL; it invalidates an unrenewed session between one and two TTLs later. */
const SESSION_TTL = '10s';
/** Renewed well within the TTL, so a slow answer or one lost request does not cost the lease. */
const RENEW_EVERY_MS = 3_000;
/**
 * After a holder's session is invalidated (it died, or could not renew), nobody may take the
 * lock for this long: a holder cut off from Consul notices at its next renewal, within
 * RENEW_EVERY_MS plus a request's timeout, and stops driving before another replica starts.
 */
const LOCK_DELAY = '8s';
const REQUEST_TIMEOUT_MS = 4_000;
/** A free lock that could not be taken (its lock delay) is tried again this often. */
const RETRY_FREE_MS = 1_000;
const BLOCKING_WAIT = '30s';

interface LockPair {
  readonly Value: string | null;
  readonly Session?: string;
}

export class ConsulLease implements Lease {
  readonly location = `Consul KV at ${CONSUL_LEASE_KEY}`;
  readonly namesHolder = true;
  private readonly stop = new AbortController();
  trouble: string | undefined;
  private session: string | undefined;
  private running: Promise<void> = Promise.resolve();
  /** The handlers while this replica holds the lease. */
  private holding: LeaseHandlers | undefined;

  constructor(
    private readonly consul: ConsulConnection,
    private readonly logger: Logger,
  ) {}

  async holder(): Promise<string | undefined> {
    try {
      const pair = (await this.consul.client.kv.get({ key: CONSUL_LEASE_KEY, timeout: REQUEST_TIMEOUT_MS } as never)) as unknown as LockPair | undefined;
      return pair?.Session ? holderOf(pair.Value) : undefined;
    } catch {
      return undefined;
    }
  }

  start(me: string | undefined, on: LeaseHandlers): Promise<void> {
    if (me === undefined) throw new Error('the Consul lease names its holder: start it with the admin URL');
    return new Promise((decided) => {
      this.running = this.compete(me, on, decided);
    });
  }

  async close(): Promise<void> {
    this.stop.abort();
    await this.running;
    await this.holding?.lost();
    const id = this.session;
    if (!id) return;
    // Released first: a destroyed session would keep the lock from others for its lock delay.
    await this.consul.client.kv.set({ key: CONSUL_LEASE_KEY, value: '', release: id, timeout: REQUEST_TIMEOUT_MS } as never).catch(() => {});
    await this.consul.client.session.destroy({ id, timeout: REQUEST_TIMEOUT_MS } as never).catch(() => {});
  }

  private async compete(me: string, on: LeaseHandlers, decided: () => void): Promise<void> {
    const signal = this.stop.signal;
    let failures = 0;
    while (!signal.aborted) {
      try {
        this.session ??= await this.createSession(me);
        const taken = (await this.consul.client.kv.set({ key: CONSUL_LEASE_KEY, value: JSON.stringify({ adminUrl: me }), acquire: this.session, timeout: REQUEST_TIMEOUT_MS } as never)) as unknown as boolean;
        failures = 0;
        this.trouble = undefined;
        if (taken) {
          await this.hold(on, decided);
        } else {
          decided();
          // Only a holder renews its session: one kept while waiting would expire unrenewed.
          await this.consul.client.session.destroy({ id: this.session, timeout: REQUEST_TIMEOUT_MS } as never).catch(() => {});
          this.session = undefined;
          await this.untilFree();
        }
      } catch (err) {
        decided();
        if (signal.aborted) return;
        // Invalidated meanwhile (Consul answers 404 to a renewal, 500 to an acquire), or never made: a new one is made.
        if (!this.holding) this.session = undefined;
        const delayMs = backoffDelay(++failures, 500, 10_000, Math.random);
        this.trouble = describeConsulError(err, this.consul);
        if (failures === 1 || failures % 20 === 0) this.logger.error({ attempt: failures }, `the canary driver lease (${this.location}) could not be taken or watched: ${this.trouble}; retrying`);
        await sleep(delayMs, undefined, { signal }).catch(() => {});
      }
    }
  }

  private async createSession(me: string): Promise<string> {
    const created = (await this.consul.client.session.create({ name: `skein canary driver ${me}`, ttl: SESSION_TTL, lockdelay: LOCK_DELAY, behavior: 'release', timeout: REQUEST_TIMEOUT_MS } as never)) as unknown as { ID: string };
    return created.ID;
  }

  /**
   * Holds the lease until a renewal fails or the lease is closed. Its session is renewed from
   * the start, while `taken` runs (resuming rollouts may take longer than the session's TTL).
   */
  private async hold(on: LeaseHandlers, decided: () => void): Promise<void> {
    this.logger.info({ lease: this.location }, 'took the canary driver lease: this replica drives canary rollouts');
    this.holding = on;
    const failed = this.renewUntilFailed();
    await on.taken();
    decided();
    const err = await failed;
    if (err === undefined) return;
    this.holding = undefined;
    // Consul invalidated it (404): a new one is made. Otherwise the same one may take the lock back.
    if (consulStatus(err) === 404) this.session = undefined;
    this.logger.warn({ lease: this.location }, `lost the canary driver lease (its session could not be renewed: ${describeConsulError(err, this.consul)}); this replica stops driving canary rollouts`);
    await on.lost();
  }

  /** Renews the session until a renewal fails (resolving its error) or the lease is closed (undefined). */
  private async renewUntilFailed(): Promise<unknown> {
    const signal = this.stop.signal;
    try {
      for (;;) {
        await sleep(RENEW_EVERY_MS, undefined, { signal });
        await this.consul.client.session.renew({ id: this.session, timeout: REQUEST_TIMEOUT_MS } as never);
      }
    } catch (err) {
      return signal.aborted ? undefined : err;
    }
  }

  /**
   * Returns once the lock may be free: when a blocking read sees it released, or, when it is
   * free already (held back by a lock delay), after RETRY_FREE_MS.
   */
  private async untilFree(): Promise<void> {
    const signal = this.stop.signal;
    let index = '0';
    while (!signal.aborted) {
      // Closing cancels the read in flight (papi's convention: 'cancel' on the request's ctx).
      const ctx = Object.assign(new EventEmitter(), { includeResponse: true as const });
      const cancel = (): void => void ctx.emit('cancel');
      signal.addEventListener('abort', cancel, { once: true });
      let read: [{ headers: Record<string, string | undefined> }, LockPair | undefined];
      try {
        read = (await this.consul.client.kv.get({ key: CONSUL_LEASE_KEY, index, wait: BLOCKING_WAIT, timeout: 40_000, ctx } as never)) as unknown as typeof read;
      } finally {
        signal.removeEventListener('abort', cancel);
      }
      const [res, pair] = read;
      if (!pair?.Session) {
        if (index === '0') await sleep(RETRY_FREE_MS, undefined, { signal }).catch(() => {});
        return;
      }
      index = res.headers['x-consul-index'] ?? '0';
    }
  }
}

function holderOf(value: string | null): string | undefined {
  try {
    const url = (JSON.parse(value ?? '') as { adminUrl?: unknown }).adminUrl;
    return typeof url === 'string' ? url : undefined;
  } catch {
    return undefined;
  }
}
