/**
 * The sidecar's own entry in Consul: its instance registered with the local agent (unique
 * ID, advertise address, the inbound mTLS port, tags and meta with `version` and
 * `protocol`), with an HTTP check on the sidecar's `/ready?instance=<id>` every 2 s (naming
 * the instance, so that a process restarted on the same admin port under another id fails
 * the old registration's check, which Consul then reaps). A hash-based blocking
 * query on `/v1/agent/service/<id>` notices at once when the agent forgets the instance
 * (an agent restart) or is unreachable, and registers again when it answers 404. On shutdown
 * the instance is put in maintenance (its check turns critical at once) and deregistered.
 *
 * The HTTP check needs an agent that can reach the sidecar's loopback admin port (an agent
 * on the same host or in the same pod). When Consul is elsewhere (a server or a node agent
 * across a network, as in Compose), the check is a TTL check instead, which the sidecar
 * passes or fails every 2 s from the same readiness `/ready` reports: one update at a time,
 * each bounded, so an agent that stops answering costs one socket, not one per tick.
 */
import { BlockingQuery, type BlockingAnswer, type BlockingRequest } from '../../common/consul/blocking-query.js';
import { consulStatus, describeConsulError, type ConsulConnection } from '../../common/consul/client.js';
import type { Logger } from '../../common/log.js';

export interface InstanceRegistration {
  readonly id: string;
  readonly service: string;
  readonly version: string;
  readonly protocol: 'http' | 'grpc';
  readonly address: string;
  readonly port: number;
  /** Where the agent checks readiness: the sidecar's admin `/ready` (the agent runs beside it). */
  readonly checkUrl: string;
  /** Set when the agent cannot reach `checkUrl`: a TTL check fed with this readiness instead. */
  readonly ttlReadiness?: () => string[];
  readonly checkInterval?: string;
  /** Consul reaps an instance whose check stayed critical this long (a sidecar that died without deregistering). */
  readonly deregisterCriticalAfter?: string;
  readonly extraTags?: readonly string[];
}

/** The TTL check's period and how often the sidecar feeds it: two updates in a row may go missing before it turns critical. */
const TTL = { everyMs: 2_000, ttl: '6s' } as const;

/** The body of `PUT /v1/agent/service/register` for this instance (consul client's option names). */
export function registrationBody(r: InstanceRegistration): Record<string, unknown> {
  return {
    id: r.id,
    name: r.service,
    address: r.address,
    port: r.port,
    tags: [r.version, ...(r.extraTags ?? [])],
    meta: { version: r.version, protocol: r.protocol, 'skein-instance': r.id },
    check: {
      checkid: checkIdOf(r.id),
      name: `skein sidecar /ready of ${r.id}`,
      ...(r.ttlReadiness ? { ttl: TTL.ttl } : { http: r.checkUrl, interval: r.checkInterval ?? '2s', timeout: '1s' }),
      deregistercriticalserviceafter: r.deregisterCriticalAfter ?? '1m',
    },
  };
}

export const checkIdOf = (id: string): string => `skein:${id}:ready`;

/**
 * A registration PUT gets this long. Without a bound, an agent that accepts the connection
 * but never answers (stopped, or cut off mid-call) would hold the keeper for good, and with
 * it the deregistration that shutdown waits for before it closes the listeners.
 */
const REGISTER_TIMEOUT_MS = 10_000;

/**
 * A TTL pass/fail gets this long: well inside the 6 s TTL, so one lost to a hung agent is
 * a failed update (the next tick tries again) while a later one can still land in time.
 */
const TTL_UPDATE_TIMEOUT_MS = 3_000;

/** Registrations come at least this far apart, as the blocking queries' requests do (README, "Registration"). */
const MIN_REREGISTER_MS = 1_000;

export class ConsulRegistration {
  private readonly keeper: BlockingQuery<'present' | 'registered'>;
  private readonly log: Logger;
  private registrations = 0;
  /** When the last registration was accepted (epoch ms), for `paced`. */
  private registeredAt = 0;
  private ttlTimer: NodeJS.Timeout | undefined;
  private ttlInFlight = false;
  private ttlFailing = false;

  constructor(
    private readonly consul: ConsulConnection,
    private readonly instance: InstanceRegistration,
    logger: Logger,
    options: { readonly waitMs?: number; readonly backoffMaxMs?: number; readonly ttlEveryMs?: number; readonly ttlTimeoutMs?: number } = {},
  ) {
    this.log = logger.child({ consul: consul.url, consulId: instance.id });
    this.keeper = new BlockingQuery({
      kind: 'hash',
      request: (req) => this.ensure(req),
      waitMs: options.waitMs,
      backoffMaxMs: options.backoffMaxMs,
      onAnswer: () => {},
      onError: (err, attempt, delayMs) => {
        if (attempt === 1 || attempt % 20 === 0) {
          this.log.error({ attempt, retryInMs: Math.round(delayMs) }, `cannot register ${instance.service} (${instance.id}) with Consul: ${describeConsulError(err, consul)}; retrying`);
        }
      },
      onRecovered: (failures) => this.log.info({ failures }, 'Consul agent reachable again'),
    });
    const readiness = instance.ttlReadiness;
    if (readiness) {
      const timeoutMs = options.ttlTimeoutMs ?? TTL_UPDATE_TIMEOUT_MS;
      this.ttlTimer = setInterval(() => void this.updateTtl(readiness, timeoutMs), options.ttlEveryMs ?? TTL.everyMs);
    }
  }

  /** Passes or fails the TTL check; skipped while the previous update is still out (each one would hold a socket). */
  private async updateTtl(readiness: () => string[], timeoutMs: number): Promise<void> {
    if (this.ttlInFlight) return;
    const blockers = readiness();
    this.ttlInFlight = true;
    const opts = { id: checkIdOf(this.instance.id), note: blockers.length === 0 ? 'ready' : blockers.join('; '), timeout: timeoutMs } as never;
    const check = this.consul.client.agent.check;
    try {
      await (blockers.length === 0 ? check.pass(opts) : check.fail(opts));
      if (this.ttlFailing) this.log.info('TTL check updates reach Consul again');
      this.ttlFailing = false;
    } catch (err) {
      // Once per outage, not per tick; the keeper re-registers if the agent lost the check.
      if (!this.ttlFailing) this.log.warn(`cannot update the TTL check in Consul: ${describeConsulError(err, this.consul)}; it turns critical after ${TTL.ttl} without one; retrying`);
      this.ttlFailing = true;
    } finally {
      this.ttlInFlight = false;
    }
  }

  /** Stops keeping the registration, fails the check and deregisters, all bounded by `timeoutMs`. */
  async deregister(timeoutMs = 2_000): Promise<void> {
    clearInterval(this.ttlTimer);
    const client = this.consul.client;
    const work = (async () => {
      // The keeper's round in flight ends first (its registration must not land after the deregistration).
      await this.keeper.stop();
      await client.agent.service.maintenance({ id: this.instance.id, enable: true, reason: 'skein sidecar draining' } as never);
      await client.agent.service.deregister({ id: this.instance.id } as never);
    })();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([work, timeout]);
      this.log.info('deregistered from Consul');
    } catch (err) {
      this.log.warn(`deregistering from Consul failed: ${describeConsulError(err, this.consul)}; Consul reaps it once its check stays critical`);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Waits until `MIN_REREGISTER_MS` after the last registration. Each registration moves the
   * keeper's cursor, which the blocking query takes for news and asks again at once: an agent
   * that answers every read with 404 (it lost the instance again, or never keeps it) would
   * otherwise be sent registrations in a tight loop. False when the keeper was stopped
   * meanwhile: no registration may land after the deregistration.
   */
  private paced(req: BlockingRequest): Promise<boolean> {
    const waitMs = this.registeredAt + MIN_REREGISTER_MS - Date.now();
    if (this.registrations === 0 || waitMs <= 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (goOn: boolean): void => {
        clearTimeout(timer);
        req.ctx.off('cancel', cancelled);
        resolve(goOn);
      };
      const cancelled = (): void => done(false);
      const timer = setTimeout(done, waitMs, true);
      req.ctx.once('cancel', cancelled);
    });
  }

  /** One keeper round: block on the agent's view of the instance; register when it has none. */
  private async ensure(req: BlockingRequest): Promise<BlockingAnswer<'present' | 'registered'>> {
    // Until the first registration there is nothing to ask after: asking would only make the
    // agent log `[ERROR] … unknown service ID` at every start (registering again is harmless).
    if (this.registrations === 0) return this.register(req);
    const query: Record<string, string> = { wait: req.wait };
    if (req.cursor !== '') query.hash = req.cursor;
    try {
      const res = (await (this.consul.client as unknown as PapiClient)._get({
        name: 'agent.service',
        path: '/agent/service/{id}',
        params: { id: this.instance.id },
        query,
        headers: this.consul.token ? { 'x-consul-token': this.consul.token } : {},
        timeout: req.timeoutMs,
        ctx: req.ctx,
      })) as { headers: Record<string, string | undefined> };
      return { data: 'present', cursor: res.headers['x-consul-contenthash'] };
    } catch (err) {
      if (consulStatus(err) !== 404) throw err;
    }
    return this.register(req);
  }

  private async register(req: BlockingRequest): Promise<BlockingAnswer<'registered'>> {
    if (!(await this.paced(req))) throw new Error('the registration keeper stopped');
    // `ctx`: stopping the keeper aborts a registration in flight too.
    await this.consul.client.agent.service.register({ ...registrationBody(this.instance), ctx: req.ctx, timeout: REGISTER_TIMEOUT_MS } as never);
    this.registeredAt = Date.now();
    this.registrations++;
    this.log.info({ address: this.instance.address, port: this.instance.port, check: this.instance.checkUrl }, this.registrations === 1 ? 'registered with Consul' : 'the Consul agent had lost this instance; registered again');
    // No cursor: the next round reads the new registration at once and then blocks on it.
    return { data: 'registered', cursor: `registered-${this.registrations}` };
  }
}

/** papi's generic request, which the consul client is built on (for an endpoint it has no method for). */
interface PapiClient {
  _get(opts: Record<string, unknown>): Promise<unknown>;
}
