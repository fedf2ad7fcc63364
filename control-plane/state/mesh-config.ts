/**
 * Reads and writes of the mesh config resources: each write is validated with the shared
 * schema (errors name the exact field), checked against what the mesh knows (a split or
 * mirror must name a declared subset or the version label of a known instance), and stored
 * with check-and-set so concurrent writers never silently overwrite each other.
 */
import type { ZodTypeAny } from 'zod';
import { ConfigError, validate } from '../../common/config/parse.js';
import { serviceName } from '../../common/config/schema.js';
import type { Discovery } from '../registry/discovery.js';
import { updateEntry, type ConfigStore, type StoreEntry, type WriteCondition } from '../store/store.js';
import { entryProblems, StoredConfigError } from '../store/stored-entries.js';
import {
  intentionsBody,
  keys,
  policyBody,
  routesBody,
  splitBody,
  type IntentionsBodyInput,
  type PolicyInput,
  type RoutesInput,
  type StoredConfig,
} from './resources.js';

export class MeshConfig {
  private readonly checked = new Map<string, { revision: number; problems: string[] }>();

  constructor(
    private readonly store: ConfigStore,
    private readonly discovery: Discovery,
  ) {}

  /**
   * The whole stored config, for composing snapshots. Throws StoredConfigError naming every
   * invalid entry (a hand-edited store.json, a hand-written KV pair): nothing of it reaches
   * sidecars, and nothing is dropped from the store.
   */
  async load(): Promise<StoredConfig> {
    const [policies, routes, intentions] = await Promise.all([
      this.store.list('policies/'),
      this.store.list('routes/'),
      this.store.get(keys.intentions),
    ]);
    const problems = [
      ...policies.flatMap((e) => this.problemsOf(e, policyBody, 'policies/')),
      ...routes.flatMap((e) => this.problemsOf(e, routesBody, 'routes/')),
      ...(intentions ? this.problemsOf(intentions, intentionsBody) : []),
    ];
    if (problems.length > 0) throw new StoredConfigError(this.store.location, problems);
    return {
      policies: Object.fromEntries(policies.map((e) => [e.key.slice('policies/'.length), e.value as PolicyInput])),
      routes: Object.fromEntries(routes.map((e) => [e.key.slice('routes/'.length), e.value as RoutesInput])),
      intentions: intentions?.value as IntentionsBodyInput | undefined,
    };
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

  async putPolicy(service: string, body: unknown, condition?: WriteCondition): Promise<StoreEntry> {
    checkService(service);
    const policy = validate(policyBody, body);
    await this.checkPolicyChange(service, Object.keys(policy.subsets));
    return this.store.put(keys.policy(service), body, condition);
  }

  async deletePolicy(service: string, condition?: WriteCondition): Promise<boolean> {
    checkService(service);
    await this.checkPolicyChange(service, []);
    return this.store.delete(keys.policy(service), condition);
  }

  getRoutes(service: string): Promise<StoreEntry | undefined> {
    return this.store.get(keys.routes(checkService(service)));
  }

  async putRoutes(service: string, body: unknown, condition?: WriteCondition): Promise<StoreEntry> {
    checkService(service);
    const rules = validate(routesBody, body);
    this.checkSubsets(service, subsetUses(rules), await this.declaredSubsets(service));
    return this.store.put(keys.routes(service), body, condition);
  }

  deleteRoutes(service: string, condition?: WriteCondition): Promise<boolean> {
    return this.store.delete(keys.routes(checkService(service)), condition);
  }

  /** Sets the weights of the service's catch-all rule, adding one when it has none. */
  async setSplit(service: string, body: unknown, condition?: WriteCondition): Promise<StoreEntry> {
    checkService(service);
    const weights = validate(splitBody, body);
    const declared = await this.declaredSubsets(service);
    this.checkSubsets(service, Object.keys(weights).map((subset) => [subset, subset] as const), declared);
    const withSplit = (rules: RoutesInput | undefined): RoutesInput => {
      const next = structuredClone(rules ?? []);
      const catchAll = next.findLastIndex((rule) => isCatchAll(rule.match));
      if (catchAll >= 0) next[catchAll] = { ...next[catchAll]!, split: weights };
      else next.push({ match: { pathPrefix: '/' }, split: weights });
      return next;
    };
    if (condition?.ifRevision !== undefined) {
      const current = await this.store.get(keys.routes(service));
      return this.store.put(keys.routes(service), withSplit(current?.value as RoutesInput | undefined), condition);
    }
    return updateEntry<RoutesInput>(this.store, keys.routes(service), withSplit);
  }

  getIntentions(): Promise<StoreEntry | undefined> {
    return this.store.get(keys.intentions);
  }

  putIntentions(body: unknown, condition?: WriteCondition): Promise<StoreEntry> {
    validate(intentionsBody, body);
    return this.store.put(keys.intentions, body, condition);
  }

  /** Subsets a split may name: declared in the policy, or the version label of a known instance. */
  knownSubsets(service: string, declared: readonly string[]): Set<string> {
    const known = new Set(declared);
    for (const instance of this.discovery.instances()) {
      if (instance.service === service && instance.labels.version) known.add(instance.labels.version);
    }
    return known;
  }

  /**
   * Refuses a policy write or delete only for what the change itself breaks: a subset the
   * service's routes use that is known now and would not be with `nextDeclared`. A subset the
   * routes already miss (its last instance left, say) is the routes' problem, and must not
   * lock the policy until someone edits them.
   */
  private async checkPolicyChange(service: string, nextDeclared: readonly string[]): Promise<void> {
    const stored = routesBody.safeParse((await this.store.get(keys.routes(service)))?.value);
    // No routes (or none that pass the schema): nothing the change could break.
    if (!stored.success) return;
    const knownNow = this.knownSubsets(service, await this.declaredSubsets(service));
    const uses = subsetUses(stored.data, 'routes').filter(([, subset]) => knownNow.has(subset));
    this.checkSubsets(service, uses, nextDeclared);
  }

  private async declaredSubsets(service: string): Promise<string[]> {
    const policy = (await this.store.get(keys.policy(service)))?.value as PolicyInput | undefined;
    return Object.keys(policy?.subsets ?? {});
  }

  /** Throws a ConfigError naming each `[path, subset]` whose subset the mesh does not know. */
  private checkSubsets(service: string, uses: readonly (readonly [string, string])[], declared: readonly string[]): void {
    const known = this.knownSubsets(service, declared);
    const problems = uses.filter(([, subset]) => !known.has(subset)).map(([path, subset]) => `${path}: ${unknownSubset(service, subset)}`);
    if (problems.length > 0) throw new ConfigError(problems);
  }
}

/** The subsets route rules name, each with its path in the rules array, e.g. `[1].split.v2`. */
function subsetUses(rules: readonly { split?: Record<string, number>; mirror?: { subset: string } }[], prefix = ''): [string, string][] {
  return rules.flatMap((rule, i) => [
    ...Object.keys(rule.split ?? {}).map((subset): [string, string] => [`${prefix}[${i}].split.${subset}`, subset]),
    ...(rule.mirror ? [[`${prefix}[${i}].mirror.subset`, rule.mirror.subset] as [string, string]] : []),
  ]);
}

function unknownSubset(service: string, subset: string): string {
  return `unknown subset "${subset}" of ${service}: not declared in its policy and no instance has version=${subset}`;
}

function checkService(service: string): string {
  const result = serviceName.safeParse(service);
  if (!result.success) throw new ConfigError([`service: "${service}" ${result.error.issues[0]!.message}`]);
  return service;
}

function isCatchAll(match: RoutesInput[number]['match']): boolean {
  if (!match) return true;
  const fields = Object.entries(match).filter(([, v]) => v !== undefined);
  return fields.length === 0 || (fields.length === 1 && match.pathPrefix === '/');
}
