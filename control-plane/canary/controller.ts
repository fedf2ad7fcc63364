/**
 * Drives automated canary rollouts: sets the split to each step through the same code path
 * as `PUT /api/v1/routes/{service}/split` (so sidecars get it by the push), waits the
 * interval, judges the canary subset's golden metrics for that step (decide.ts), and
 * advances, holds or rolls back to `from`=100. Each rollout's state is kept in the store
 * under `canaries/{service}`, so a restarted control plane resumes a running rollout at
 * its current step (with a fresh measurement window: the metrics were in memory). Stored
 * states are checked when read back (`load`): a hand-corrupted one refuses the start, naming
 * its key, before any rollout is resumed or anything is written. An operator can pause, resume
 * and promote a running rollout (as abort, each stops its loop first and acts on a state no
 * analysis is changing); a paused one keeps a loop that only waits, so it stays owned here.
 * Only the replica holding the lease (store/lease.ts) drives rollouts and takes these actions;
 * the others answer GETs from the store and send actions to the holder.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError, validate } from '../../common/config/parse.js';
import { serviceName } from '../../common/config/schema.js';
import type { Logger } from '../../common/log.js';
import type { Golden } from '../observability/golden.js';
import type { StepWindow } from '../observability/stats.js';
import type { CanaryGuard } from '../state/mesh-config.js';
import { InstancesNotKnownError } from '../state/registry-gap.js';
import type { Lease } from '../store/lease.js';
import type { ConfigStore, StoreEntry, StoreOp } from '../store/store.js';
import { entryProblems, StoredConfigError } from '../store/stored-entries.js';
import type { RunningCanary } from './conflicts.js';
import { decide, unlessUnready } from './decide.js';
import { canaryBody, storedCanary, type CanarySpec } from './schema.js';

export type CanaryStatus = 'running' | 'succeeded' | 'rolled-back' | 'aborted';

/** One analysis: a step's window, what was measured in it, and what was decided. */
export interface CanaryAnalysis {
  step: number;
  weight: number;
  windowStart: string;
  analyzedAt: string;
  measured: { requests: number; successRate: number | null; p99Ms: number | null };
  decision: 'advance' | 'hold' | 'rollback';
  reason?: string;
}

export interface CanaryState {
  service: string;
  spec: CanarySpec;
  status: CanaryStatus;
  /** Index into spec.steps of the weight the split is at (or was at when it ended). */
  step: number;
  weight: number;
  startedAt: string;
  /** When the current step's measurement window began. */
  stepStartedAt: string;
  updatedAt: string;
  endedAt?: string;
  reason?: string;
  /** While an operator has it paused: no step is judged or advanced until it is resumed or promoted. */
  paused?: { at: string; reason?: string };
  /** The steps an operator moved past by hand, their analysis skipped (`full`: straight to 100%). */
  promotions?: { at: string; step: number; weight: number; full: boolean }[];
  analyses: CanaryAnalysis[];
}

export interface CanaryDeps {
  readonly store: ConfigStore;
  /**
   * Sets the catch-all split and resolves once the snapshot with it is published; rejects with
   * SplitNotPublishedError when it is stored but cannot be published (publish-split.ts).
   */
  setSplit(service: string, weights: Record<string, number>): Promise<void>;
  /** How many healthy instances the subset selects now; rejects with ConfigError for a subset the mesh does not know. */
  healthyInstances(service: string, subset: string): Promise<number>;
  /** Rejects as setSplit would refuse `weights` for themselves (a ConfigError), setting nothing. */
  checkSplit(service: string, weights: Record<string, number>): Promise<void>;
  /**
   * Resolves with when sidecars that ran a snapshot before a restart were sent the newest one
   * (0 when none were held back): until then they run the splits they had, whatever is published.
   */
  released(): Promise<number>;
  /**
   * Opens a step's window on the subset, once its split is published: it takes the reports of
   * sidecars whose interval began under the snapshot published now or a later one, and those of
   * sidecars that do not say (older ones) arriving from `unversionedFrom` (ms) on.
   */
  openWindow(service: string, subset: string, unversionedFrom: number): StepWindow;
  /** Who drives rollouts: its holder is named to an operator who sent an action to another replica. */
  readonly lease: Pick<Lease, 'holder' | 'location' | 'trouble'>;
  readonly logger: Logger;
}

export class CanaryConflictError extends Error {
  override name = 'CanaryConflictError';
}

/**
 * An action (start, abort, pause, resume, promote) sent to a replica that does not drive
 * rollouts: `driver` is the admin URL of the one that does, undefined while the lease changes hands.
 */
export class CanaryElsewhereError extends Error {
  override name = 'CanaryElsewhereError';
  constructor(
    message: string,
    readonly driver: string | undefined,
  ) {
    super(message);
  }
}

/** An operator action (pause, resume, promote) on a service no rollout of which was ever started. */
export class NoCanaryError extends Error {
  override name = 'NoCanaryError';
}

/**
 * A start whose `to` subset has no healthy instance: its first step's share of requests would
 * go nowhere (503 no-healthy-endpoints) for a whole interval before the rollback.
 */
export class CanaryNotReadyError extends Error {
  override name = 'CanaryNotReadyError';
}

/**
 * A split the store took but no snapshot carries (another stored entry keeps the config from
 * being composed): sidecars still route by the previous one, so a rollout must neither measure
 * nor advance as though they did. The message says so, with the reason.
 */
export class SplitNotPublishedError extends Error {
  override name = 'SplitNotPublishedError';
}

const KEY_PREFIX = 'canaries/';
/**
 * The sidecars' telemetry report interval (1 s) with a margin: a request's figures arrive up to
 * that much later, so a step is judged that long after its interval ends, and the reports of a
 * sidecar that does not say which snapshot they were counted under count from that long after
 * it starts.
 */
const REPORT_LAG_MS = 1_200;

export class CanaryController implements CanaryGuard {
  private readonly states = new Map<string, CanaryState>();
  private readonly loops = new Map<string, { abort: AbortController; done: Promise<void> }>();
  /**
   * Services whose start is between validation and the first split, with the spec, so two
   * POSTs cannot both start and config writes already count the rollout as running.
   */
  private readonly starting = new Map<string, CanarySpec>();
  /**
   * Aborts under way, from the signal to the stored end: a second abort gets the same end
   * instead of restoring the split and saving the state again, and a start meanwhile is
   * refused (409) instead of having its split and state overwritten by this one's.
   */
  private readonly ending = new Map<string, Promise<CanaryState | undefined>>();
  /**
   * Operator actions under way (abort, pause, resume, promote), chained per service: each stops
   * the rollout's loop and acts on the state the one before left, so two never interleave, and a
   * start meanwhile is refused.
   */
  private readonly acting = new Map<string, Promise<unknown>>();
  /**
   * Resumed rollouts whose step's split was refused at the start (subsets known only by instances
   * not reconnected yet): their loop sets it again once sidecars are released, before anything else.
   */
  private readonly unsplit = new Set<string>();
  /** Whether this replica drives rollouts: from the end of `drive()` to the start of `standDown()`. */
  private driving = false;
  /** This replica's first try for the lease (`decidedBy`): actions sent before it is decided wait for it. */
  private firstTry: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: CanaryDeps) {}

  /**
   * Reads every stored rollout, checked: throws StoredConfigError naming each invalid entry
   * (a hand-edited store.json or KV pair), having kept or changed nothing. A finished rollout
   * whose value is refused is skipped with a warning instead.
   */
  async load(): Promise<void> {
    const entries = await this.deps.store.list(KEY_PREFIX);
    const problems: string[] = [];
    const good: StoreEntry[] = [];
    for (const entry of entries) {
      const found = problemsOf(entry);
      if (found.length === 0) {
        good.push(entry);
      } else if (isFinished(entry.value) && keyProblemsOf(entry).length === 0) {
        // A finished rollout is history only (nothing resumes it): one a newer schema refuses,
        // e.g. an interval over today's 24h cap, is skipped rather than blocking the start.
        this.deps.logger.warn(
          { key: entry.key, problems: found },
          `skipping the finished canary rollout stored at ${entry.key}, which this version refuses (${found.join('; ')}); it is left in the store but not listed, and a new rollout of the service replaces it`,
        );
      } else {
        problems.push(...found);
      }
    }
    if (problems.length > 0) throw new StoredConfigError(this.deps.store.location, problems, 'refusing to start');
    this.states.clear();
    for (const entry of good) {
      const state: CanaryState = storedCanary.parse(entry.value);
      this.states.set(state.service, state);
    }
  }

  /**
   * Resumes the running rollouts `load` read at their current step, setting that step's split
   * again first: the stored one may be another (a crash between a step's split and its saved
   * state leaves the next step's; an edit while stopped, anything), and the step must be judged
   * on the split sidecars run. One that cannot be set (an edit made an earlier rule keep requests
   * from it, say) rolls the rollout back, with why. One refused as invalid (a subset known only
   * as its instances' `version` label, while the built-in registry is still empty after the
   * start) is tried again once the resync hold has let sidecars reconnect, and only then rolled
   * back.
   */
  private async resume(): Promise<void> {
    for (const state of [...this.states.values()]) {
      if (state.status !== 'running') continue;
      this.deps.logger.info({ service: state.service, step: state.step, weight: state.weight }, 'resuming canary rollout');
      try {
        await this.deps.setSplit(state.service, weights(state.spec, state.weight));
      } catch (err) {
        if (!(err instanceof ConfigError)) {
          await this.finish(state, 'rolled-back', resumeFailure(state, err));
          continue;
        }
        this.deps.logger.info({ service: state.service, err: (err as Error).message }, 'the resumed canary rollout\'s split is refused for now; trying again once sidecars have reconnected');
        this.unsplit.add(state.service);
      }
      const now = new Date().toISOString();
      // Driven on from memory if the store refuses the fresh window now: its next save stores it.
      await this.save({ ...state, stepStartedAt: now, updatedAt: now }).catch((err: unknown) => {
        this.deps.logger.warn({ service: state.service, err: (err as Error).message }, 'could not store the resumed canary rollout\'s new window; driving it on');
      });
      this.launch(state.service);
    }
  }

  /**
   * Starts driving, when this replica takes the lease: every stored rollout is read again
   * (another replica may have driven them until now) and the running ones are resumed. A stored
   * rollout refused since the start leaves them all undriven, the log saying which and why.
   */
  async drive(): Promise<void> {
    try {
      await this.load();
    } catch (err) {
      this.deps.logger.error({ err: (err as Error).message }, 'cannot drive canary rollouts: a stored rollout is refused; fix or delete it, then restart this control plane');
      return;
    }
    await this.resume();
    this.driving = true;
  }

  /**
   * Stops driving, when this replica lost the lease: the loops stop without changing any state,
   * for the replica that takes the lease to resume them, and actions are refused from now on.
   */
  async standDown(): Promise<void> {
    this.driving = false;
    await this.close();
  }

  /** The latest rollout of `service`: this replica's own while it drives them, otherwise as stored by the one that does. */
  async latest(service: string): Promise<CanaryState | undefined> {
    if (this.driving) return this.states.get(service);
    const parsed = storedCanary.safeParse((await this.deps.store.get(KEY_PREFIX + service))?.value);
    return parsed.success ? parsed.data : undefined;
  }

  /** Actions sent before `decided` (this replica's first try for the lease) wait for it, rather than be refused while it may yet drive. */
  decidedBy(decided: Promise<unknown>): void {
    this.firstTry = decided.catch(() => {});
  }

  /**
   * Refuses an action here when this replica does not drive rollouts, naming the one that
   * does. Callers ask only when not driving, so a driver's actions start in the same tick.
   */
  private async unlessDriving(): Promise<void> {
    await this.firstTry;
    if (this.driving) return;
    const driver = await this.deps.lease.holder();
    if (driver === undefined) {
      const lease = this.deps.lease;
      const why = lease.trouble === undefined ? 'is changing hands' : `cannot be taken by this replica: ${lease.trouble}`;
      throw new CanaryElsewhereError(`no control-plane replica drives canary rollouts at this moment (their lease, ${lease.location}, ${why}); try again in a few seconds`, undefined);
    }
    throw new CanaryElsewhereError(`canary rollouts are driven by the control-plane replica at ${driver} (it holds their lease, ${this.deps.lease.location}); send this to it`, driver);
  }

  /**
   * The CanaryGuard of config writes (canary/conflicts.ts): the rollout of `service` that is
   * starting or running here, or stored as running (by another replica), and a check of its
   * key at the revision read, committed with the write.
   */
  async running(service: string): Promise<{ canary?: RunningCanary; check: StoreOp }> {
    const entry = await this.deps.store.get(KEY_PREFIX + service);
    const check: StoreOp = { op: 'check', key: KEY_PREFIX + service, revision: entry?.revision ?? 0 };
    const starting = this.starting.get(service);
    if (starting) return { canary: { service, from: starting.from, to: starting.to, step: 0, steps: starting.steps, weight: starting.steps[0]! }, check };
    const local = this.states.get(service);
    const parsed = storedCanary.safeParse(entry?.value);
    const state: CanaryState | undefined = this.loops.has(service) && local ? local : parsed.success ? parsed.data : undefined;
    if (state?.status !== 'running') return { check };
    return { canary: { service, from: state.spec.from, to: state.spec.to, step: state.step, steps: state.spec.steps, weight: state.weight }, check };
  }

  async start(service: string, body: unknown): Promise<CanaryState> {
    const spec = validate(canaryBody, body);
    if (!this.driving) await this.unlessDriving();
    if (this.ending.has(service)) throw new CanaryConflictError(`the canary rollout of ${service} is being aborted; start the new one once it has ended`);
    if (this.starting.has(service) || this.loops.has(service) || this.acting.has(service)) throw new CanaryConflictError(`a canary rollout of ${service} is already running; abort it first (DELETE /api/v1/canaries/${service})`);
    this.starting.set(service, spec);
    try {
      // The split API's validation (service name, known subsets) answers for the whole request,
      // its problems named by the body's fields (`to: unknown subset …`), not by the split's keys.
      const healthy = await this.deps.healthyInstances(service, spec.to).catch((err: unknown) => Promise.reject(asBodyError(err, spec)));
      if (healthy === 0) throw new CanaryNotReadyError(`to: subset ${spec.to} of ${service} has no healthy instance, so ${spec.steps[0]}% of its requests would fail; start the rollout once one is ready`);
      await this.deps.setSplit(service, weights(spec, spec.steps[0]!)).catch(async (err: unknown) => {
        if (err instanceof SplitNotPublishedError) throw await this.notStarted(spec, service, err);
        throw asBodyError(err, spec);
      });
      const now = new Date().toISOString();
      const state: CanaryState = { service, spec, status: 'running', step: 0, weight: spec.steps[0]!, startedAt: now, stepStartedAt: now, updatedAt: now, analyses: [] };
      await this.save(state);
      this.launch(service);
      return state;
    } finally {
      this.starting.delete(service);
    }
  }

  /**
   * A start whose first split was stored but not published: that split is set back to
   * `from`=100 (as an abort would), so it does not reach sidecars later, once the stored config
   * composes again, for a rollout that never ran.
   */
  private async notStarted(spec: CanarySpec, service: string, err: SplitNotPublishedError): Promise<SplitNotPublishedError> {
    let restore = `its split is set back to ${spec.from}=100`;
    try {
      await this.deps.setSplit(service, { [spec.from]: 100 });
    } catch (again) {
      // Not published either, most likely: stored is what matters here.
      if (!(again instanceof SplitNotPublishedError)) restore = `its split could not be set back to ${spec.from}=100 (${(again as Error).message})`;
    }
    return new SplitNotPublishedError(`the canary rollout of ${service} did not start: ${err.message}; ${restore}`);
  }

  /**
   * Stops a running rollout and restores `from`=100; undefined when none is running. `reason`
   * is what the state records: an operator's abort, or a forced config write that touched it.
   */
  async abort(service: string, reason = 'aborted by an operator'): Promise<CanaryState | undefined> {
    const ending = this.ending.get(service);
    if (ending) return ending;
    if (!this.driving) await this.unlessDriving();
    if (!this.loops.has(service) && !this.acting.has(service)) return undefined;
    const ended = this.serially(service, async () => {
      const loop = this.loops.get(service);
      if (!loop) return undefined;
      // While the registry refills after a start, `from` may be unknown only for now: ended
      // then, the rollout would leave its split in place; it runs on, and the abort is "try again".
      await this.deps.checkSplit(service, { [this.states.get(service)!.spec.from]: 100 }).catch((err: unknown) => {
        if (err instanceof InstancesNotKnownError) throw err;
      });
      loop.abort.abort();
      await loop.done;
      const state = this.states.get(service)!;
      return state.status === 'running' ? this.finish(state, 'aborted', reason) : state;
    }).finally(() => this.ending.delete(service));
    this.ending.set(service, ended);
    return ended;
  }

  /**
   * Pauses a running rollout: its loop stops, so no analysis decides and its split stays at the
   * step's, and it keeps owning its routes and subsets (writes still 409) until resumed, promoted
   * or aborted. Rejects with NoCanaryError or CanaryConflictError (not running, already paused,
   * driven by another replica).
   */
  pause(service: string, reason?: string): Promise<CanaryState> {
    return this.operate(service, async (state) => {
      if (state.paused) throw new CanaryConflictError(`the canary rollout of ${service} is already paused (since ${state.paused.at}${state.paused.reason ? `: ${state.paused.reason}` : ''}); resume it with POST /api/v1/canaries/${service}/resume`);
      const at = new Date().toISOString();
      const paused: CanaryState = { ...state, paused: { at, ...(reason ? { reason } : {}) }, updatedAt: at };
      await this.save(paused);
      return paused;
    });
  }

  /**
   * Resumes a paused rollout at its step with a fresh measurement window (the step starts again,
   * as after a restart): what the step measured before the pause is not judged with what after.
   */
  resumePaused(service: string): Promise<CanaryState> {
    return this.operate(service, async (state) => {
      if (!state.paused) throw new CanaryConflictError(`the canary rollout of ${service} is not paused`);
      const at = new Date().toISOString();
      const resumed: CanaryState = { ...unpaused(state), stepStartedAt: at, updatedAt: at };
      await this.save(resumed);
      return resumed;
    });
  }

  /**
   * Moves a running rollout (paused or not, which it resumes as Argo Rollouts' promote does) to
   * its next step now, skipping the current step's analysis, or with `full` straight to 100% of
   * `to`, which ends it succeeded; recorded in `promotions` (and the end's reason). The split is
   * checked first, so a refused one (503 while subsets are not known yet, say) leaves the rollout
   * as it was.
   */
  promote(service: string, full = false): Promise<CanaryState> {
    return this.operate(service, async (state) => {
      const last = state.spec.steps.length - 1;
      // Past the last step (only `--steps 100`'s, already at 100%): the rollout succeeds as it is.
      const next = full ? Math.max(last, state.step + 1) : state.step + 1;
      if (next <= last) await this.deps.checkSplit(service, weights(state.spec, state.spec.steps[next]!));
      const at = new Date().toISOString();
      const skipped = full && next > state.step + 1 ? 'the analysis of this step and of those up to 100%' : 'its analysis';
      const promoted: CanaryState = { ...unpaused(state), promotions: [...(state.promotions ?? []), { at, step: state.step, weight: state.weight, full }], updatedAt: at };
      const reason = `promoted by an operator at step ${state.step + 1} of ${state.spec.steps.length} (${state.weight}% ${state.spec.to}) to 100%, skipping ${skipped}`;
      return this.advance(promoted, next, reason);
    });
  }

  /**
   * Stops the loops without changing state, so a restart resumes them; once the operator actions
   * under way are done, since each starts its rollout's loop again.
   */
  async close(): Promise<void> {
    await Promise.all(this.acting.values());
    const loops = [...this.loops.values()];
    for (const loop of loops) loop.abort.abort();
    await Promise.all(loops.map((l) => l.done));
  }

  /**
   * An operator action on the rollout this replica drives: its loop is stopped first (as an
   * abort stops it), so `act` reads and saves a state no analysis is changing, then started
   * again on what `act` left, unless the rollout ended; also when `act` refuses.
   */
  private async operate(service: string, act: (state: CanaryState) => Promise<CanaryState>): Promise<CanaryState> {
    if (!this.driving) await this.unlessDriving();
    return this.serially(service, async () => {
      const loop = this.loops.get(service);
      if (!loop) throw this.notDriven(service);
      loop.abort.abort();
      await loop.done;
      const state = this.states.get(service)!;
      // Its own analysis ended it (rolled back, succeeded) while the loop was stopping.
      if (state.status !== 'running') throw new CanaryConflictError(notRunning(state));
      try {
        return await act(state);
      } finally {
        if (this.states.get(service)!.status === 'running') this.launch(service);
      }
    });
  }

  /** Why this replica, which drives rollouts, has no loop for `service` to act on, as the error to answer. */
  private notDriven(service: string): Error {
    if (this.starting.has(service)) return new CanaryConflictError(`the canary rollout of ${service} is starting; try again once it has started`);
    const state = this.states.get(service);
    return state ? new CanaryConflictError(notRunning(state)) : new NoCanaryError(`no canary rollout of ${service} has been started`);
  }

  /** Runs `action` once those under way for `service` are done, whatever their outcome. */
  private serially<T>(service: string, action: () => Promise<T>): Promise<T> {
    const result = (this.acting.get(service) ?? Promise.resolve()).then(action, action);
    const settled = result.then(() => {}, () => {});
    this.acting.set(service, settled);
    void settled.then(() => {
      if (this.acting.get(service) === settled) this.acting.delete(service);
    });
    return result;
  }

  private launch(service: string): void {
    const abort = new AbortController();
    const done = (this.unsplit.has(service) ? this.resplitOnRelease(service, abort.signal) : Promise.resolve(true))
      .then((go) => (go ? this.run(service, abort.signal) : undefined))
      .catch((err: unknown) => {
        if (!abort.signal.aborted) this.deps.logger.error({ err, service }, 'canary rollout failed');
      })
      .finally(() => this.loops.delete(service));
    this.loops.set(service, { abort, done });
  }

  private async run(service: string, signal: AbortSignal): Promise<void> {
    // A paused rollout's loop only holds its place (start refused, writes judged on its state) until stopped.
    if (this.states.get(service)!.paused) return untilAborted(new Promise<never>(() => {}), signal);
    await this.windowFromRelease(service, signal);
    /** The current step's window; kept through its holds, so they add up. */
    let window: { stepStartedAt: string; measured: StepWindow } | undefined;
    try {
      for (;;) {
        const state = this.states.get(service)!;
        const windowStart = Date.parse(state.stepStartedAt);
        if (window?.stepStartedAt !== state.stepStartedAt) {
          window?.measured.close();
          window = { stepStartedAt: state.stepStartedAt, measured: this.deps.openWindow(service, state.spec.to, windowStart + REPORT_LAG_MS) };
        }
        const checkAt = windowStart + state.spec.interval * (1 + holdsAt(state));
        await sleep(Math.max(0, checkAt + REPORT_LAG_MS - Date.now()), undefined, { signal });
        if (!(await this.judge(state, window.measured.measure((checkAt - windowStart) / 1000), signal))) return;
      }
    } finally {
      window?.measured.close();
    }
  }

  /** Decides on the step's measurement `g` and acts on it; false once the rollout is over (or its loop stopped). */
  private async judge(current: CanaryState, g: Golden, signal: AbortSignal): Promise<boolean> {
    let state = current;
    const holds = holdsAt(state);
    const judged = decide(state.spec, state.spec.to, g, holds);
    const next = state.step + 1;
    // Advancing moves weight onto `to`, except past `--steps 100`'s only step (nothing left to move).
    const moves = next < state.spec.steps.length;
    const decision = moves ? unlessUnready(state.spec, state.spec.to, judged, await this.healthy(state), holds) : judged;
    const analysis: CanaryAnalysis = {
      step: state.step,
      weight: state.weight,
      windowStart: state.stepStartedAt,
      analyzedAt: new Date().toISOString(),
      measured: { requests: g.requests, successRate: g.successRate, p99Ms: g.latencyMs?.p99 ?? null },
      decision: decision.action,
      ...(decision.action === 'advance' ? {} : { reason: decision.reason }),
    };
    state = { ...state, analyses: [...state.analyses, analysis], updatedAt: analysis.analyzedAt };
    if (decision.action === 'hold') {
      await this.save(state);
      return true;
    }
    if (decision.action === 'rollback') {
      await this.finish(state, 'rolled-back', decision.reason);
      return false;
    }
    state = await this.advance(state, next);
    return state.status === 'running' && !signal.aborted;
  }

  /**
   * Moves the rollout to step `next`, setting its split, or ends it succeeded: at 100%, or past
   * the last step (only `--steps 100` gets there by analysis: all traffic went to the canary at
   * the start, and it has passed there). A split that cannot be set rolls it back. `reason` is
   * what a success records (a promotion's).
   */
  private async advance(state: CanaryState, next: number, reason?: string): Promise<CanaryState> {
    const because = reason ? { reason } : {};
    if (next >= state.spec.steps.length) {
      const ended: CanaryState = { ...state, status: 'succeeded', endedAt: state.updatedAt, ...because };
      await this.save(ended);
      return ended;
    }
    const weight = state.spec.steps[next]!;
    try {
      await this.deps.setSplit(state.service, weights(state.spec, weight));
    } catch (err) {
      return this.finish(state, 'rolled-back', `could not set the split to ${weight}% ${state.spec.to}: ${(err as Error).message}`);
    }
    // The step's split is set: one a resumed loop still had to set again is superseded.
    this.unsplit.delete(state.service);
    const at = new Date().toISOString();
    const moved: CanaryState = { ...state, step: next, weight, stepStartedAt: at, updatedAt: at };
    const saved: CanaryState = weight === 100 ? { ...moved, status: 'succeeded', endedAt: at, ...because } : moved;
    await this.save(saved);
    return saved;
  }

  /**
   * Ends a rollout that did not complete: the split goes back to `from`=100. It ends even when
   * that split is refused (someone replaced the service's policy meanwhile, dropping `from`):
   * a rollout left "running" with no loop could be neither aborted nor replaced cleanly.
   */
  private async finish(state: CanaryState, status: 'rolled-back' | 'aborted', reason: string): Promise<CanaryState> {
    this.deps.logger.warn({ service: state.service, status, reason }, 'canary rollout ended; restoring the split');
    let restore = '';
    try {
      await this.deps.setSplit(state.service, { [state.spec.from]: 100 });
    } catch (err) {
      restore =
        err instanceof SplitNotPublishedError
          ? `; ${err.message}`
          : `; the split could not be restored to ${state.spec.from}=100 (${(err as Error).message}), so the routes stay as they are`;
      this.deps.logger.error({ service: state.service, err }, 'canary rollout ended without restoring the split');
    }
    this.unsplit.delete(state.service);
    const at = new Date().toISOString();
    const ended: CanaryState = { ...unpaused(state), status, reason: reason + restore, weight: 0, updatedAt: at, endedAt: at };
    await this.save(ended);
    return ended;
  }

  /**
   * A resumed rollout whose split was refused at the start: set it again once held-back sidecars
   * were released (they reconnected, so the registry knows their instances again), and for as
   * long as the instances are not known yet; false when it is refused otherwise, the rollout
   * then rolled back.
   */
  private async resplitOnRelease(service: string, signal: AbortSignal): Promise<boolean> {
    await untilAborted(this.deps.released(), signal);
    const state = this.states.get(service)!;
    for (;;) {
      try {
        await this.deps.setSplit(service, weights(state.spec, state.weight));
        this.unsplit.delete(service);
        break;
      } catch (err) {
        // Still not known (Consul's catalog unread since the start, where no hold releases
        // anything): asked again when the gap says, rather than rolled back for an outage.
        if (err instanceof InstancesNotKnownError) {
          await sleep(Math.max(0, err.gap.until - Date.now()), undefined, { signal });
          continue;
        }
        await this.finish(state, 'rolled-back', resumeFailure(state, err));
        return false;
      }
    }
    const at = new Date().toISOString();
    await this.save({ ...state, stepStartedAt: at, updatedAt: at });
    return true;
  }

  /**
   * After a restart the push server holds snapshots back from the sidecars already connected
   * (its resync hold), so a split set meanwhile, resumed or started, is not what they run: the
   * step's window starts once they are sent it, or the step would be judged, and the rollout
   * advanced, on the split before.
   */
  private async windowFromRelease(service: string, signal: AbortSignal): Promise<void> {
    const releasedAt = await untilAborted(this.deps.released(), signal);
    const state = this.states.get(service)!;
    if (Date.parse(state.stepStartedAt) >= releasedAt) return;
    const at = new Date(releasedAt).toISOString();
    await this.save({ ...state, stepStartedAt: at, updatedAt: at });
  }

  /** The healthy instances of the rollout's `to` subset, none when it is no longer known (its last instance left). */
  private async healthy(state: CanaryState): Promise<number> {
    return this.deps.healthyInstances(state.service, state.spec.to).catch((err: unknown) => {
      if (err instanceof ConfigError) return 0;
      throw err;
    });
  }

  private async save(state: CanaryState): Promise<void> {
    this.states.set(state.service, state);
    await this.deps.store.put(KEY_PREFIX + state.service, state);
  }
}

/** The state without its pause: resumed, promoted or ended. */
function unpaused(state: CanaryState): CanaryState {
  const { paused: _, ...rest } = state;
  return rest;
}

function notRunning(state: CanaryState): string {
  return `the canary rollout of ${state.service} is not running: it ${state.status === 'succeeded' ? 'succeeded' : `was ${state.status}`}${state.reason ? ` (${state.reason})` : ''}`;
}

/** Whether a stored rollout says it has ended (whatever else is wrong with it). */
function isFinished(value: unknown): boolean {
  const status = (value as { status?: unknown } | null)?.status;
  return status === 'succeeded' || status === 'rolled-back' || status === 'aborted';
}

/** The problems of one stored rollout: its key must name a service, the one its state is for. */
function problemsOf(entry: StoreEntry): string[] {
  return entryProblems(entry, storedCanary, keyProblemsOf(entry));
}

/** What is wrong with a stored rollout's key: not a service name, or not the service its state is for. */
function keyProblemsOf(entry: StoreEntry): string[] {
  const name = entry.key.slice(KEY_PREFIX.length);
  const service = serviceName.safeParse(name);
  const value = entry.value as { service?: unknown } | null;
  return !service.success
    ? [`not a service name: ${service.error.issues[0]!.message}`]
    : typeof value?.service === 'string' && value.service !== name
      ? [`holds the rollout of "${value.service}", not of "${name}"`]
      : [];
}

/** `promise`, or a rejection once `signal` aborts: a loop stopped while it waits. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    void promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Extra intervals the current step has waited for (enough requests, or a healthy `to`). */
function holdsAt(state: CanaryState): number {
  let n = 0;
  for (let i = state.analyses.length - 1; i >= 0; i--) {
    const a = state.analyses[i]!;
    if (a.step !== state.step || a.decision !== 'hold' || a.windowStart !== state.stepStartedAt) break;
    n++;
  }
  return n;
}

/** A split's ConfigError with its problems (`v9: …`) named by the body field that chose that subset (`to: …`); anything else as it is. */
function asBodyError(err: unknown, spec: CanarySpec): unknown {
  if (!(err instanceof ConfigError)) return err;
  const problems = err.problems.map((p) => asBodyField(p, spec));
  return err instanceof InstancesNotKnownError ? new InstancesNotKnownError(problems, err.gap) : new ConfigError(problems);
}

function asBodyField(problem: string, spec: CanarySpec): string {
  for (const field of ['to', 'from'] as const) if (problem.startsWith(`${spec[field]}: `)) return `${field}${problem.slice(spec[field].length)}`;
  return problem;
}

function resumeFailure(state: CanaryState, err: unknown): string {
  return `on resuming, could not set the split of step ${state.step + 1} (${state.weight}% ${state.spec.to}) again: ${(err as Error).message}`;
}

function weights(spec: CanarySpec, weight: number): Record<string, number> {
  return weight >= 100 ? { [spec.to]: 100 } : { [spec.from]: 100 - weight, [spec.to]: weight };
}
