/**
 * Reads and writes of the mesh config resources: each write is validated with the shared
 * schema (errors name the exact field), checked against what the mesh knows (a split or
 * mirror must name a declared subset or the version label of a known instance), and stored
 * with check-and-set so concurrent writers never silently overwrite each other. A whole
 * `skein apply` file is judged by the state it leaves behind and written in one store
 * transaction (`apply`).
 */
import type { ZodTypeAny } from 'zod';
import { ConfigError, validate } from '../../common/config/parse.js';
import { routesChange, RunningCanaryError, subsetChanges, type CanaryConflict, type RunningCanary } from '../canary/conflicts.js';
import { serviceName } from '../../common/config/schema.js';
import { isEndpoint, type Discovery } from '../registry/discovery.js';
import { conflictBackoff, StoreConflictError, type ConfigStore, type StoreEntry, type StoreOp, type WriteCondition } from '../store/store.js';
import { entryProblems, StoredConfigError } from '../store/stored-entries.js';
import { selectEndpoints, subsetSelector } from '../../common/routing/subsets.js';
import { knownSubsets, subsetUses, unknownSubsetProblems, type SubsetUse } from '../../common/config/subset-uses.js';
import { composeSnapshot } from './compose.js';
import { ownEntry } from '../../common/config/own.js';
import { registryGap, registryRefusal, type ResyncWindow } from './registry-gap.js';
import { checkSnapshotSize } from './snapshot-size.js';
import { withSplit } from './split-rule.js';
import {
  applyDocuments,
  intentionsBody,
  keys,
  newIntentionsBody,
  policyBody,
  routesBody,
  splitBody,
  type IntentionsBodyInput,
  type PolicyInput,
  type RoutesInput,
  type StoredConfig,
  withOps,
} from './resources.js';

/**
 * What guards writes against running canary rollouts (the CanaryController): the rollout of a
 * service this control plane runs or is starting, or one stored as running by another
 * replica, and a store check on its key (`canaries/{service}` at the revision read) that is
 * committed with the write, so a rollout that starts, steps or ends in between has the write
 * judged again on the new state.
 */
export interface CanaryGuard {
  running(service: string): Promise<{ canary?: RunningCanary; check: StoreOp }>;
}

/**
 * How a write meets a running rollout that it touches (canary/conflicts.ts): by default it is
 * refused (RunningCanaryError, 409); with `force` that is called to abort those rollouts and
 * the write is judged again and made; `rollout` is the canary controller's own split, which
 * the guard does not apply to.
 */
export interface CanaryWriteMode {
  readonly force?: (conflicts: readonly CanaryConflict[]) => Promise<void>;
  readonly rollout?: boolean;
}

/** One document of an apply file, as it is (or would be) written. */
export interface ApplyDocument {
  readonly kind: 'policy' | 'routes' | 'intentions';
  /** The service; absent for intentions. */
  readonly service?: string;
  readonly key: string;
}

/** What an apply file writes: its documents, in order, and the store transaction that writes them (puts in that order, then checks). */
export interface ApplyPlan {
  readonly documents: readonly ApplyDocument[];
  readonly ops: readonly StoreOp[];
  /** Running rollouts the file would touch: refused unless forced (the ops check their keys). */
  readonly conflicts: readonly CanaryConflict[];
}

/** A stored entry its schema refuses, with its problems (each `key: problem`). */
export interface RefusedEntry {
  readonly key: string;
  readonly problems: readonly string[];
}

/** How often `apply` re-reads and re-judges a file when another writer changed what it read. */
const APPLY_ATTEMPTS = 10;
/** How often a single write judged against another key is judged again when that key keeps changing. */
const JUDGED_ATTEMPTS = 10;
/** How often a forced write aborts the rollouts it touches before giving up (another may start meanwhile). */
const FORCE_ATTEMPTS = 3;

/** A service write judged against the rollouts: what it would change of one. */
interface CanaryItem {
  readonly service: string;
  readonly where?: string;
  changes(canary: RunningCanary): string[];
}

/** One judgement of a guarded write on what it read (MeshConfig.judgedWrite). */
interface Judged<T> {
  /** Running rollouts the write would touch: refused unless forced. */
  readonly conflicts: readonly CanaryConflict[];
  /** Makes the write, with check-and-set on what the judgement read. */
  write(): Promise<T>;
  /** Whether this store conflict means another writer moved what was judged, so the write is judged again; without it, none does. */
  again?(err: StoreConflictError): boolean;
}

export class MeshConfig {
  private readonly checked = new Map<string, { revision: number; problems: string[] }>();
  private guard?: CanaryGuard;

  constructor(
    private readonly store: ConfigStore,
    private readonly discovery: Discovery,
    /** While it lasts, refusals that rest on the instances known are InstancesNotKnownErrors (registry-gap.ts). */
    private readonly hold?: ResyncWindow,
  ) {}

  /** Where the config is stored, for messages that send an operator there. */
  get location(): string {
    return this.store.location;
  }

  /** Guards every later write (except the controller's own, `rollout`) against running rollouts. */
  guardWith(guard: CanaryGuard): void {
    this.guard = guard;
  }

  /**
   * Runs `judge` (read, judge, build the write) and makes the write it answers. When that
   * touches running rollouts it is refused (RunningCanaryError, canary/conflicts.ts), or,
   * forced, those rollouts are aborted and it is judged again from the start (the abort
   * rewrote the routes; another rollout may start meanwhile, so only a few times). When
   * another writer moved what it read (`again`), it is judged again on the new state, up to
   * `attempts` in all.
   */
  private async judgedWrite<T>(mode: CanaryWriteMode, attempts: number, judge: () => Promise<Judged<T>>): Promise<T> {
    let forced = 0;
    for (let attempt = 1; ; attempt++) {
      const judged = await judge();
      if (judged.conflicts.length > 0) {
        if (!mode.force || forced >= FORCE_ATTEMPTS) throw new RunningCanaryError(judged.conflicts);
        forced++;
        await mode.force(judged.conflicts);
        continue;
      }
      try {
        return await judged.write();
      } catch (err) {
        if (!(err instanceof StoreConflictError) || !judged.again?.(err) || attempt >= attempts) throw err;
      }
      await conflictBackoff(attempt);
    }
  }

  /** The rollouts' store checks and conflicts for a write (canaryChecks); the controller's own split is not guarded. */
  private judgeCanaries(mode: CanaryWriteMode, items: readonly CanaryItem[]): Promise<{ checks: StoreOp[]; conflicts: CanaryConflict[] }> {
    return mode.rollout ? Promise.resolve({ checks: [], conflicts: [] }) : this.canaryChecks(items);
  }

  /** The store checks of the rollouts of the items' services, and what the items would change of those running. */
  private async canaryChecks(items: readonly CanaryItem[]): Promise<{ checks: StoreOp[]; conflicts: CanaryConflict[] }> {
    const checks: StoreOp[] = [];
    if (!this.guard) return { checks, conflicts: [] };
    const byService = new Map<string, { canary?: RunningCanary; changes: string[]; where: string[] }>();
    for (const item of items) {
      let found = byService.get(item.service);
      if (!found) {
        const { canary, check } = await this.guard.running(item.service);
        checks.push(check);
        found = { canary, changes: [], where: [] };
        byService.set(item.service, found);
      }
      if (!found.canary) continue;
      const changes = item.changes(found.canary);
      if (changes.length === 0) continue;
      found.changes.push(...changes.filter((c) => !found.changes.includes(c)));
      if (item.where) found.where.push(item.where);
    }
    const conflicts = [...byService.values()].flatMap((f): CanaryConflict[] =>
      f.canary && f.changes.length > 0 ? [{ canary: f.canary, changes: f.changes, ...(f.where.length > 0 ? { where: f.where } : {}) }] : [],
    );
    return { checks, conflicts };
  }

  /**
   * The whole stored config, for composing snapshots. Throws StoredConfigError naming every
   * invalid entry (a hand-edited store.json, a hand-written KV pair): nothing of it reaches
   * sidecars, and nothing is dropped from the store.
   */
  async load(): Promise<StoredConfig> {
    const { config, refused } = await this.read();
    if (refused.length > 0) throw new StoredConfigError(this.store.location, refused.flatMap((r) => r.problems));
    return config;
  }

  /**
   * The stored config's entries that pass their schema, and those that do not with their
   * problems: for readers that show what they can and name the rest, where composing a
   * snapshot (`load`) refuses the whole.
   */
  async read(): Promise<{ config: StoredConfig; refused: RefusedEntry[] }> {
    const [policies, routes, intentions] = await Promise.all([
      this.store.list('policies/'),
      this.store.list('routes/'),
      this.store.get(keys.intentions),
    ]);
    const refused: RefusedEntry[] = [];
    const good = (entries: readonly StoreEntry[], schema: ZodTypeAny, servicePrefix?: string): StoreEntry[] =>
      entries.filter((entry) => {
        const problems = this.problemsOf(entry, schema, servicePrefix);
        if (problems.length > 0) refused.push({ key: entry.key, problems });
        return problems.length === 0;
      });
    const config: StoredConfig = {
      policies: Object.fromEntries(good(policies, policyBody, 'policies/').map((e) => [e.key.slice('policies/'.length), e.value as PolicyInput])),
      routes: Object.fromEntries(good(routes, routesBody, 'routes/').map((e) => [e.key.slice('routes/'.length), e.value as RoutesInput])),
      intentions: good(intentions ? [intentions] : [], intentionsBody)[0]?.value as IntentionsBodyInput | undefined,
    };
    return { config, refused };
  }

  /** Each stored revision is checked once: snapshots are composed far more often than config changes. */
  private problemsOf(entry: StoreEntry, schema: ZodTypeAny, servicePrefix?: string): string[] {
    const cached = this.checked.get(entry.key);
    if (cached?.revision === entry.revision) return cached.problems;
    const service = servicePrefix === undefined ? undefined : serviceName.safeParse(entry.key.slice(servicePrefix.length));
    const problems = entryProblems(entry, schema, service && !service.success ? [`not a service name: ${service.error.issues[0]!.message}`] : []);
    this.checked.set(entry.key, { revision: entry.revision, problems });
    return problems;
  }

  getPolicy(service: string): Promise<StoreEntry | undefined> {
    return this.store.get(keys.policy(checkService(service)));
  }

  async putPolicy(service: string, body: unknown, condition?: WriteCondition, mode: CanaryWriteMode = {}): Promise<StoreEntry> {
    checkService(service);
    const policy = validate(policyBody, body);
    // Written on condition that the routes judged are still the stored ones: a concurrent
    // routes write that starts using a subset this policy drops fails the write, which is
    // then judged again (and refused) instead of leaving routes naming an undeclared subset.
    // (That check also catches a rollout starting in between: its first split moves the routes.)
    return this.putJudged(keys.policy(service), body, condition, keys.routes(service), (routes) => this.checkPolicyChange(service, Object.keys(policy.subsets), routes), {
      mode,
      item: (current) => ({ service, changes: (canary) => subsetChanges(canary, current?.value, body) }),
    });
  }

  async deletePolicy(service: string, condition?: WriteCondition, mode: CanaryWriteMode = {}): Promise<boolean> {
    checkService(service);
    return this.judgedWrite(mode, JUDGED_ATTEMPTS, async () => {
      const [routes, current] = await Promise.all([this.store.get(keys.routes(service)), this.store.get(keys.policy(service))]);
      await this.checkPolicyChange(service, [], routes);
      const { checks, conflicts } = await this.judgeCanaries(mode, [{ service, changes: (canary) => subsetChanges(canary, current?.value, undefined) }]);
      return {
        conflicts,
        // One transaction on condition that the policy deleted, the routes and the rollouts
        // judged are all still as read: routes that start using one of its subsets in
        // between, or a rollout that starts, fail it, and it is judged again on the new state.
        write: async () => {
          if (current === undefined) {
            const expected = condition?.ifRevision;
            if (expected !== undefined && expected !== 0) throw new StoreConflictError(keys.policy(service), expected, 0);
            return false;
          }
          await this.store.transaction([
            { op: 'delete', key: keys.policy(service), condition: condition ?? { ifRevision: current.revision } },
            { op: 'check', key: keys.routes(service), revision: routes?.revision ?? 0 },
            ...checks,
          ]);
          return true;
        },
        again: (err) => err.key !== keys.policy(service) || condition === undefined,
      };
    });
  }

  getRoutes(service: string): Promise<StoreEntry | undefined> {
    return this.store.get(keys.routes(checkService(service)));
  }

  async putRoutes(service: string, body: unknown, condition?: WriteCondition, mode: CanaryWriteMode = {}): Promise<StoreEntry> {
    checkService(service);
    const rules = validate(routesBody, body);
    // Likewise on condition that the policy judged against is still the stored one.
    return this.putJudged(
      keys.routes(service),
      body,
      condition,
      keys.policy(service),
      async (policy) => {
        this.checkSubsets(service, subsetUses(rules), declaredIn(policy));
      },
      { mode, item: (current) => ({ service, changes: () => (routesChange(current?.value, body) ? ['its routes'] : []) }) },
    );
  }

  async deleteRoutes(service: string, condition?: WriteCondition, mode: CanaryWriteMode = {}): Promise<boolean> {
    checkService(service);
    return this.judgedWrite(mode, JUDGED_ATTEMPTS, async () => {
      const current = await this.store.get(keys.routes(service));
      const { checks, conflicts } = await this.judgeCanaries(mode, [{ service, changes: () => (current ? ['its routes (deleted)'] : []) }]);
      return {
        conflicts,
        // Guarded, on condition that the routes judged are still the stored ones (a rollout
        // that started in between has moved them); the store deletes no key in a transaction.
        write: () => this.store.delete(keys.routes(service), condition ?? (checks.length > 0 ? { ifRevision: current?.revision ?? 0 } : undefined)),
        again: () => condition === undefined,
      };
    });
  }

  /**
   * Sets the weights of the service's catch-all rule, adding one when it has none; refused
   * (ShadowedSplitError) when an earlier rule would keep ordinary requests from it (split-rule.ts).
   */
  async setSplit(service: string, body: unknown, condition?: WriteCondition, mode: CanaryWriteMode = {}): Promise<StoreEntry> {
    checkService(service);
    const weights = validate(splitBody, body);
    // The routes are read, changed and written on condition that neither they (unless the
    // caller gave its own condition, which then fails as 412) nor the policy judged against moved.
    return this.judgedWrite(mode, JUDGED_ATTEMPTS, async () => {
      const [routes, policy] = await Promise.all([this.store.get(keys.routes(service)), this.store.get(keys.policy(service))]);
      this.checkSplitSubsets(service, weights, policy);
      const next = withSplit(service, routes?.value as RoutesInput | undefined, weights);
      const { checks, conflicts } = await this.judgeCanaries(mode, [{ service, changes: () => (routesChange(routes?.value, next) ? ['the split of its catch-all rule'] : []) }]);
      const ops: StoreOp[] = [
        { op: 'put', key: keys.routes(service), value: next, condition: condition ?? { ifRevision: routes?.revision ?? 0 } },
        { op: 'check', key: keys.policy(service), revision: policy?.revision ?? 0 },
        ...checks,
      ];
      return {
        conflicts,
        write: async () => (await this.commit(ops))[0]!,
        again: (err) => err.key === keys.policy(service) || isCanaryKey(err.key) || condition === undefined,
      };
    });
  }

  /** Throws as setSplit would refuse `body` for itself (invalid weights, an unknown subset), writing nothing. */
  async checkSplit(service: string, body: unknown): Promise<void> {
    checkService(service);
    this.checkSplitSubsets(service, validate(splitBody, body), await this.store.get(keys.policy(service)));
  }

  private checkSplitSubsets(service: string, weights: Record<string, number>, policy: StoreEntry | undefined): void {
    this.checkSubsets(service, Object.keys(weights).map((subset) => [subset, subset] as const), declaredIn(policy));
  }

  /**
   * Writes `key` after `judge` accepted it against the stored `other` entry, in one store
   * transaction with a check that `other` is still at the revision judged; when another
   * writer changed it in between, judges again on the new state and retries (a few times).
   * A conflict on `key` itself (the caller's `condition`) is thrown as it is.
   */
  private async putJudged(
    key: string,
    value: unknown,
    condition: WriteCondition | undefined,
    other: string,
    judge: (other: StoreEntry | undefined) => Promise<void>,
    canary: { mode: CanaryWriteMode; item: (current: StoreEntry | undefined) => CanaryItem },
  ): Promise<StoreEntry> {
    return this.judgedWrite(canary.mode, JUDGED_ATTEMPTS, async () => {
      const [current, mine] = await Promise.all([this.store.get(other), this.store.get(key)]);
      await judge(current);
      const { checks, conflicts } = await this.judgeCanaries(canary.mode, [canary.item(mine)]);
      // Judged against a rollout, the write also needs the value it was judged to change (or
      // leave alone) to be the stored one: without the caller's own condition, one of ours,
      // whose conflict is judged again like the others.
      const own = condition ?? (checks.length > 0 ? { ifRevision: mine?.revision ?? 0 } : undefined);
      const ops: StoreOp[] = [{ op: 'put', key, value, ...(own ? { condition: own } : {}) }, { op: 'check', key: other, revision: current?.revision ?? 0 }, ...checks];
      return {
        conflicts,
        write: async () => (await this.commit(ops))[0]!,
        again: (err) => err.key === other || isCanaryKey(err.key) || (err.key === key && condition === undefined),
      };
    });
  }

  getIntentions(): Promise<StoreEntry | undefined> {
    return this.store.get(keys.intentions);
  }

  async putIntentions(body: unknown, condition?: WriteCondition): Promise<StoreEntry> {
    validate(newIntentionsBody, body);
    await this.checkSize([{ op: 'put', key: keys.intentions, value: body }]);
    return this.store.put(keys.intentions, body, condition);
  }

  /** Commits `ops` as one store transaction, unless the snapshot they would make is too large (checkSize). */
  private async commit(ops: readonly StoreOp[]): Promise<StoreEntry[]> {
    await this.checkSize(ops);
    return this.store.transaction(ops);
  }

  /**
   * Throws SnapshotTooLargeError, writing nothing, when the snapshot composed from the stored
   * config with `ops` made (and the instances known now) would not fit in one message on the
   * push stream. Entries the schema refuses are left out, as they would be once fixed or deleted.
   */
  private async checkSize(ops: readonly StoreOp[]): Promise<void> {
    const { config } = await this.read();
    const body = composeSnapshot(withOps(config, ops), this.discovery.instances());
    // A version as long as the one the write's snapshot will get (from the clock, see snapshots.ts).
    const version = String(Date.now());
    checkSnapshotSize(version, JSON.stringify({ version, ...body }), 'write');
  }

  /**
   * Judges a whole apply file (`{services, routes, intentions}` in wire form) by the state it
   * leaves behind, not document by document: for each service it names, the policy in force
   * afterwards is the file's or else the stored one, and likewise the routes. Routes the file
   * writes must name only subsets that policy declares (or version labels of known
   * instances); a policy the file writes may drop any subset, except one the stored routes it
   * leaves in place use (and that is known now: a subset they already miss does not block
   * it, as with a PUT). Writes nothing. Throws ConfigError with every problem placed in the
   * file, e.g. `routes.catalog[0].split.v9: unknown subset "v9" of catalog: …`.
   */
  async checkApply(body: unknown): Promise<ApplyPlan> {
    const file = validate(applyDocuments, body);
    if (file.services === undefined && file.routes === undefined && file.intentions === undefined) throw new ConfigError(['nothing to apply: expected services, routes or intentions']);
    // Stored as sent, so durations stay as the operator wrote them.
    const raw = body as { services?: Record<string, unknown>; routes?: Record<string, unknown>; intentions?: unknown };
    const services = [...new Set([...Object.keys(file.services ?? {}), ...Object.keys(file.routes ?? {})])];
    const stored = new Map(await Promise.all(services.map(async (service) => [service, await this.storedOf(service)] as const)));
    const problems: string[] = [];
    const documents: ApplyDocument[] = [];
    const puts: StoreOp[] = [];
    const checks: StoreOp[] = [];
    const canaryItems: CanaryItem[] = [];
    // Every key the judgement read is either written with check-and-set or checked, so a
    // change by another writer in between fails the transaction instead of slipping past it.
    const write = (document: ApplyDocument, value: unknown, revision: number) => {
      documents.push(document);
      puts.push({ op: 'put', key: document.key, value, condition: { ifRevision: revision } });
    };
    for (const [service, policy] of Object.entries(file.services ?? {})) {
      const now = stored.get(service)!;
      write({ kind: 'policy', service, key: keys.policy(service) }, raw.services![service], now.policy?.revision ?? 0);
      canaryItems.push({ service, where: `services.${service}`, changes: (canary) => subsetChanges(canary, now.policy?.value, raw.services![service]) });
      if (ownEntry(file.routes, service)) continue;
      checks.push({ op: 'check', key: keys.routes(service), revision: now.routes?.revision ?? 0 });
      const routes = routesBody.safeParse(now.routes?.value);
      // No routes (or none that pass the schema): nothing the policy could break.
      if (!routes.success) continue;
      const knownNow = this.knownSubsets(service, declaredIn(now.policy));
      const uses = subsetUses(routes.data, 'routes').filter(([, subset]) => knownNow.has(subset));
      problems.push(...this.subsetProblems(service, uses, Object.keys(policy.subsets)).map((p) => `services.${service}.${p}`));
    }
    for (const [service, rules] of Object.entries(file.routes ?? {})) {
      const now = stored.get(service)!;
      write({ kind: 'routes', service, key: keys.routes(service) }, raw.routes![service], now.routes?.revision ?? 0);
      canaryItems.push({ service, where: `routes.${service}`, changes: () => (routesChange(now.routes?.value, raw.routes![service]) ? ['its routes'] : []) });
      const policy = ownEntry(file.services, service);
      if (!policy) checks.push({ op: 'check', key: keys.policy(service), revision: now.policy?.revision ?? 0 });
      const declared = policy ? Object.keys(policy.subsets) : declaredIn(now.policy);
      problems.push(...this.subsetProblems(service, subsetUses(rules), declared).map((p) => `routes.${service}${p}`));
    }
    if (file.intentions !== undefined) {
      // Intentions depend on nothing else: last writer wins, as with PUT /api/v1/intentions.
      documents.push({ kind: 'intentions', key: keys.intentions });
      puts.push({ op: 'put', key: keys.intentions, value: raw.intentions });
    }
    // Every problem here is a subset the instances known now do not carry.
    if (problems.length > 0) throw registryRefusal(problems, this.gap());
    // Judged last, so a file that does not fit the mesh is a 422 whatever rollouts run; the
    // rollouts' keys are checked with the rest, and the caller decides on the conflicts.
    const canaries = await this.canaryChecks(canaryItems);
    return { documents, ops: [...puts, ...checks, ...canaries.checks], conflicts: canaries.conflicts };
  }

  /**
   * Checks a whole apply file (checkApply) and writes all of it in one store transaction, so
   * no reader, watcher or other replica ever sees part of it and sidecars get one snapshot.
   * When another writer changed something the judgement read, the file is judged again on
   * the new state and retried. Resolves each document with its stored entry, in file order.
   */
  async apply(body: unknown, mode: CanaryWriteMode = {}): Promise<{ document: ApplyDocument; entry: StoreEntry }[]> {
    // Nothing of the file is written while it would touch a running rollout; forced, the
    // rollouts are aborted first and the file judged again on what that left.
    return this.judgedWrite(mode, APPLY_ATTEMPTS, async () => {
      const plan = await this.checkApply(body);
      return {
        conflicts: plan.conflicts,
        write: async () => {
          if (plan.ops.length === 0) return [];
          const entries = await this.commit(plan.ops);
          return plan.documents.map((document, i) => ({ document, entry: entries[i]! }));
        },
        // Every key the file's judgement read is in its transaction.
        again: () => true,
      };
    });
  }

  private async storedOf(service: string): Promise<{ policy?: StoreEntry; routes?: StoreEntry }> {
    const [policy, routes] = await Promise.all([this.store.get(keys.policy(service)), this.store.get(keys.routes(service))]);
    return { policy, routes };
  }

  /**
   * How many healthy instances (a ready sidecar, or Consul checks passing or warning, or with
   * the policy's `onlyPassing` passing: those that receive traffic) `subset` selects now; a
   * ConfigError (`SUBSET: unknown subset …`) for a subset a split could not name. While the
   * registry may be incomplete (registry-gap.ts), none is an InstancesNotKnownError.
   */
  async healthyInstances(service: string, subset: string): Promise<number> {
    const policy = (await this.getPolicy(service))?.value as PolicyInput | undefined;
    const subsets = policy?.subsets ?? {};
    this.checkSubsets(service, [[subset, subset]], Object.keys(subsets));
    // Not a disconnected one: it keeps traffic for its grace period only.
    const healthy = this.discovery.instances().filter((i) => i.service === service && i.health !== 'disconnected' && isEndpoint(i, policy?.onlyPassing));
    const selected = selectEndpoints(subsetSelector({ subsets }, subset), healthy).length;
    const gap = selected === 0 ? this.gap() : undefined;
    if (gap) throw registryRefusal([`${subset}: no healthy instance of subset ${subset} of ${service} is known yet`], gap);
    return selected;
  }

  /** Why the instances known now may be incomplete, if they may (registry-gap.ts). */
  private gap() {
    return registryGap(this.discovery, this.hold);
  }

  /** Subsets a split may name: declared in the policy, or the version label of a known instance. */
  knownSubsets(service: string, declared: readonly string[]): Set<string> {
    return knownSubsets(declared, this.discovery.instances().filter((instance) => instance.service === service));
  }

  /**
   * Refuses a policy write or delete only for what the change itself breaks: a subset the
   * service's routes use that is known now and would not be with `nextDeclared`. A subset the
   * routes already miss (its last instance left, say) is the routes' problem, and must not
   * lock the policy until someone edits them.
   */
  private async checkPolicyChange(service: string, nextDeclared: readonly string[], routes: StoreEntry | undefined): Promise<void> {
    const stored = routesBody.safeParse(routes?.value);
    // No routes (or none that pass the schema): nothing the change could break.
    if (!stored.success) return;
    const knownNow = this.knownSubsets(service, await this.declaredSubsets(service));
    const uses = subsetUses(stored.data, 'routes').filter(([, subset]) => knownNow.has(subset));
    this.checkSubsets(service, uses, nextDeclared);
  }

  private async declaredSubsets(service: string): Promise<string[]> {
    return declaredIn(await this.store.get(keys.policy(service)));
  }

  /** Throws a ConfigError (InstancesNotKnownError while the registry may be incomplete) naming each `[path, subset]` whose subset the mesh does not know. */
  private checkSubsets(service: string, uses: readonly SubsetUse[], declared: readonly string[]): void {
    const problems = this.subsetProblems(service, uses, declared);
    if (problems.length > 0) throw registryRefusal(problems, this.gap());
  }

  /** `path: unknown subset …` for each `[path, subset]` whose subset would not be known with `declared`. */
  private subsetProblems(service: string, uses: readonly SubsetUse[], declared: readonly string[]): string[] {
    return unknownSubsetProblems(service, uses, this.knownSubsets(service, declared));
  }
}

function isCanaryKey(key: string): boolean {
  return key.startsWith('canaries/');
}

/** The subsets a stored policy entry declares (none without one). */
function declaredIn(policy: StoreEntry | undefined): string[] {
  return Object.keys((policy?.value as PolicyInput | undefined)?.subsets ?? {});
}

function checkService(service: string): string {
  const result = serviceName.safeParse(service);
  if (!result.success) throw new ConfigError([`service: "${service}" ${result.error.issues[0]!.message}`]);
  return service;
}
