/**
 * The order saga: reserve stock → charge payment → confirm. When a step fails the order is
 * cancelled with a reason, and what was (or may have been) done is compensated in reverse:
 * refund, then release. Each remote step is keyed by the order id, so running the saga again
 * for the same order (a retry, or a restart that finds it pending) never reserves or charges
 * twice. Compensations run in order, one order at a time; one that fails is retried with
 * backoff by `runDueCompensations` (and those after it wait for it).
 *
 * A run that resumes an order a crashed process left pending does not know how far that
 * process got: if it had reserved, it may also have sent the charge, so a failure now owes a
 * refund too (a refund of a charge never made voids it). And a resumed run whose call never
 * reached the service (this sidecar is not up yet, or it has no route or endpoint for it yet:
 * a whole shop starting again) leaves the order pending for the next try rather than
 * cancelling an order that may well be paid.
 */
import type { Logger } from '../../common/log.js';
import { HttpError, UpstreamError } from '../shared/http-errors.js';
import { answerError, neverDelivered, type Answer, type ServiceClient } from '../shared/mesh.js';
import type { TraceHeaders } from '../shared/trace.js';
import { backoffMs } from './backoff.js';
import type { Compensation, Order, OrderStore } from './store.js';

export interface SagaDeps {
  store: OrderStore;
  inventory: ServiceClient;
  payments: ServiceClient;
  log: Logger;
  compensationMaxBackoffMs: number;
}

type StepResult = { ok: true } | { ok: false; reason: string; owed: Compensation[]; notSent: boolean };

const CALL_TIMEOUT_MS = 5_000;

export class OrderSaga {
  /** Orders whose compensations are running now, so the sweeper and a saga never both run them. */
  private readonly compensating = new Set<string>();

  constructor(private readonly deps: SagaDeps) {}

  /** `resumed`: the order was left pending by an earlier process, not placed by a caller waiting now. */
  async run(orderId: string, trace: TraceHeaders = {}, resumed = false): Promise<Order> {
    const { store } = this.deps;
    const order = store.get(orderId);
    if (!order) throw new Error(`saga: no order ${orderId}`);
    if (order.status !== 'pending') return order;

    // The reservation step is recorded before the charge is sent: past it, a charge may exist.
    const mayHaveCharged = order.steps.some((s) => s.step === 'reserve' && s.outcome === 'ok');
    const reserved = await this.reserve(order, trace, mayHaveCharged, resumed);
    if (!reserved.ok) return this.fail(order, reserved, resumed, trace);
    const charged = await this.charge(order, trace, resumed);
    if (!charged.ok) return this.fail(order, charged, resumed, trace);
    store.confirm(order.id);
    return store.get(order.id)!;
  }

  private fail(order: Order, step: Extract<StepResult, { ok: false }>, resumed: boolean, trace: TraceHeaders): Promise<Order> {
    if (resumed && step.notSent) {
      this.deps.log.info({ orderId: order.id, reason: step.reason }, 'resumed saga could not reach the service yet; the order stays pending');
      return Promise.resolve(this.deps.store.get(order.id)!);
    }
    return this.cancel(order, step.reason, step.owed, trace);
  }

  /** Retry the compensations whose backoff has passed. */
  async runDueCompensations(): Promise<void> {
    for (const orderId of this.deps.store.ordersOwingCompensation(Date.now())) await this.compensateOrder(orderId, {});
  }

  private async reserve(order: Order, trace: TraceHeaders, mayHaveCharged: boolean, resumed: boolean): Promise<StepResult> {
    const body = { reservationId: order.id, items: order.items.map((i) => ({ productId: i.productId, quantity: i.quantity })) };
    const outcome = await this.attempt(this.deps.inventory, 'POST', '/reservations', { body, trace });
    const owed: { refused: Compensation[]; unknown: Compensation[] } = mayHaveCharged ? { refused: ['refund'], unknown: ['refund', 'release'] } : { refused: [], unknown: ['release'] };
    return this.settle(order, 'reserve', outcome, 'could not reserve stock', owed, resumed);
  }

  private async charge(order: Order, trace: TraceHeaders, resumed: boolean): Promise<StepResult> {
    const body = { userId: order.userId, amountCents: order.totalCents, currency: order.currency };
    const outcome = await this.attempt(this.deps.payments, 'POST', '/charges', { body, trace, headers: { 'idempotency-key': order.id } });
    if (outcome.answer && outcome.answer.status < 300 && (outcome.answer.body as { status?: string }).status !== 'captured') {
      // A replayed charge that was refunded or voided in an earlier run: this order is not paid.
      outcome.answer = { ...outcome.answer, status: 409 };
      outcome.detail = 'the charge for this order was already refunded or voided';
    }
    // Refund comes first: compensation runs in reverse order of the steps.
    return this.settle(order, 'charge', outcome, 'payment failed', { refused: ['release'], unknown: ['refund', 'release'] }, resumed);
  }

  /**
   * Records the step and decides what is owed. A 4xx from the service itself is a definite
   * "no", leaving only the earlier steps to undo; anything else (5xx, a sidecar-made answer,
   * a timeout) may or may not have taken effect, so this step is undone too.
   */
  private settle(order: Order, step: 'reserve' | 'charge', outcome: Outcome, what: string, owed: { refused: Compensation[]; unknown: Compensation[] }, resumed: boolean): StepResult {
    const { store } = this.deps;
    const { answer, detail } = outcome;
    if (answer && answer.status < 300) {
      store.recordStep(order.id, step, 'ok');
      return { ok: true };
    }
    // A resumed run that could not send the call leaves the order pending and tries again at
    // the next sweep: recording each try would add a failed step a second while the mesh is away.
    if (!(resumed && outcome.notSent)) store.recordStep(order.id, step, 'failed', detail);
    const refused = answer !== undefined && answer.status >= 400 && answer.status < 500 && !answer.headers['x-skein-reason'];
    return { ok: false, reason: `${what}: ${detail}`, owed: refused ? owed.refused : owed.unknown, notSent: outcome.notSent === true };
  }

  private async cancel(order: Order, reason: string, owed: Compensation[], trace: TraceHeaders): Promise<Order> {
    const { store, log } = this.deps;
    store.cancel(order.id, reason, owed);
    log.info({ orderId: order.id, reason, owed }, 'order cancelled');
    await this.compensateOrder(order.id, trace);
    return store.get(order.id)!;
  }

  /** Runs an order's owed compensations in order, stopping at the first that fails or is not yet due. */
  private async compensateOrder(orderId: string, trace: TraceHeaders): Promise<void> {
    if (this.compensating.has(orderId)) return;
    this.compensating.add(orderId);
    try {
      for (const c of this.deps.store.compensationsOwed(orderId)) {
        if (c.nextAttemptAt > Date.now()) return;
        if (!(await this.compensate(orderId, c.action, c.attempts, trace))) return;
      }
    } finally {
      this.compensating.delete(orderId);
    }
  }

  private async compensate(orderId: string, action: Compensation, attempts: number, trace: TraceHeaders): Promise<boolean> {
    const { store, log, inventory, payments, compensationMaxBackoffMs } = this.deps;
    // A refund carries its charge's key: payments is balanced on it (ring-hash), so the refund
    // goes where the charge went first.
    const outcome =
      action === 'refund'
        ? await this.attempt(payments, 'POST', `/charges/${encodeURIComponent(orderId)}/refund`, { trace, headers: { 'idempotency-key': orderId } })
        : await this.attempt(inventory, 'POST', `/reservations/${encodeURIComponent(orderId)}/release`, { trace });
    if (outcome.answer && outcome.answer.status < 300) {
      store.compensationDone(orderId, action);
      return true;
    }
    const { detail } = outcome;
    log.warn({ orderId, action, attempts, detail }, 'compensation failed; will retry');
    store.compensationFailed(orderId, action, Date.now() + backoffMs(attempts, 200, compensationMaxBackoffMs), detail);
    return false;
  }

  private async attempt(client: ServiceClient, method: string, path: string, opts: Parameters<ServiceClient['call']>[2]): Promise<Outcome> {
    try {
      const answer = await client.call(method, path, { ...opts, timeoutMs: CALL_TIMEOUT_MS });
      if (answer.status < 300) return { answer, detail: '' };
      return { answer, detail: answerError(client.service, answer).message, notSent: neverDelivered(answer) };
    } catch (err) {
      if (err instanceof UpstreamError) return { detail: err.message, notSent: err.notSent };
      if (err instanceof HttpError) return { detail: err.message };
      throw err;
    }
  }
}

/** What a remote step got: an answer (any status), or none; `detail` says what went wrong. */
interface Outcome {
  answer?: Answer;
  detail: string;
  /**
   * The call never reached the service: it could not leave this process (connection refused),
   * or the mesh answered that it had nowhere to deliver it (no route or endpoint yet, a breaker).
   */
  notSent?: boolean;
}
