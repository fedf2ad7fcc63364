/**
 * The control plane's own Prometheus series, in the registry it is given (no global default
 * registry, so several control planes can live in one test process), plus prom-client's
 * default process metrics. Served by `GET /metrics` on the admin port (./routes.ts).
 *
 * Two series are read at scrape time from the state the admin API already shows, so there is
 * one tally and two views of it: `skein_ca_csr_total` from the CA's SignStats (the counts in
 * `GET /api/v1/ca`) and `skein_proxies` from the proxy tracker (`GET /api/v1/proxies`). The
 * others are counted where the event happens, through the narrow callbacks below.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Counter, Gauge, collectDefaultMetrics, type Registry } from 'prom-client';
import type { SignOutcome } from '../ca/sign-service.js';
import type { SyncState } from '../push/proxies.js';

/** Outcomes exported at 0 before the first CSR, so a rate over the first refusal is not lost. */
const CSR_OUTCOMES: readonly SignOutcome[] = ['issued', 'unauthenticated', 'identity-mismatch', 'bad-csr'];
const SYNC_STATES: readonly SyncState[] = ['SYNCED', 'STALE', 'NACKED'];
/** Anything else (a client's made-up verb) is one `other` series, not one series per verb. */
const METHODS = new Set(['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS']);

export type TokenAction = 'issued' | 'revoked';
export type ConfigAnswer = 'ack' | 'nack';

export interface MetricSources {
  /** CSRs answered so far, by outcome: the CA's SignStats view. */
  csrOutcomes(): Partial<Record<SignOutcome, number>>;
  /** The sync state of every connected sidecar now. */
  proxyStates(): Iterable<SyncState>;
}

export class ControlPlaneMetrics {
  private readonly pushes: Counter;
  private readonly answers: Counter<'result'>;
  private readonly tokens: Counter<'action'>;
  private readonly requests: Counter<'method' | 'code'>;

  constructor(
    readonly registry: Registry,
    sources: MetricSources,
    options: { processMetrics?: boolean } = {},
  ) {
    const registers = [registry];
    if (options.processMetrics !== false) collectDefaultMetrics({ register: registry });
    new Counter({
      name: 'skein_ca_csr_total',
      help: 'CSRs the CA answered, by outcome: issued, or the refusal (unauthenticated, identity-mismatch, bad-csr)',
      labelNames: ['outcome'],
      registers,
      collect() {
        const counts = sources.csrOutcomes();
        this.reset();
        for (const outcome of new Set([...CSR_OUTCOMES, ...(Object.keys(counts) as SignOutcome[])])) this.inc({ outcome }, counts[outcome] ?? 0);
      },
    });
    new Gauge({
      name: 'skein_proxies',
      help: 'Connected sidecars by sync state (SYNCED, STALE, NACKED), as GET /api/v1/proxies shows them',
      labelNames: ['state'],
      registers,
      collect() {
        const counts = new Map<SyncState, number>(SYNC_STATES.map((s) => [s, 0]));
        for (const state of sources.proxyStates()) counts.set(state, counts.get(state)! + 1);
        for (const [state, n] of counts) this.set({ state }, n);
      },
    });
    this.pushes = new Counter({ name: 'skein_snapshot_pushes_total', help: 'Snapshot messages written to sidecar streams', registers });
    this.answers = new Counter({ name: 'skein_config_acks_total', help: 'Snapshot answers from sidecars, by result (ack/nack)', labelNames: ['result'], registers });
    this.tokens = new Counter({ name: 'skein_bootstrap_tokens_total', help: 'Bootstrap tokens issued and revoked through the admin API', labelNames: ['action'], registers });
    this.requests = new Counter({ name: 'skein_admin_requests_total', help: 'Admin API responses, by method and status code', labelNames: ['method', 'code'], registers });
    for (const result of ['ack', 'nack'] as const) this.answers.inc({ result }, 0);
    for (const action of ['issued', 'revoked'] as const) this.tokens.inc({ action }, 0);
  }

  snapshotPushed(): void {
    this.pushes.inc();
  }

  configAnswered(result: ConfigAnswer): void {
    this.answers.inc({ result });
  }

  tokenChanged(action: TokenAction): void {
    this.tokens.inc({ action });
  }

  /** Counts every response `server` finishes; a listener beside the admin API's own, which stays unaware of it. */
  countResponses(server: Server): void {
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      res.once('finish', () => this.requests.inc({ method: req.method && METHODS.has(req.method) ? req.method : 'other', code: res.statusCode }));
    });
  }
}
