/**
 * Whether the subsets a service's rules name (in a split or a mirror) select anything: a
 * subset is known when the service's policy declares it or an instance carries it as its
 * `version` label (SPEC §4). A rule naming an unknown one would fail only at its requests
 * (503 no-healthy-endpoints for its share, mirror copies dropped), so where the whole set of
 * instances is known it is refused up front: by the control plane against the instances it
 * knows, by a static sidecar without --consul against the endpoints its file lists.
 */
import { ownEntry } from './own.js';
import { ALL_ENDPOINTS } from '../routing/split.js';
import type { ServicePolicy, Snapshot } from './schema.js';

/** A subset named by a rule, with the rule's path, e.g. `['[1].split.v2', 'v2']`. */
export type SubsetUse = readonly [path: string, subset: string];

/** The subsets route rules name, each with its path in the rules array (after `prefix`), e.g. `[1].split.v2`. */
export function subsetUses(rules: readonly { split?: Record<string, number>; mirror?: { subset: string } }[], prefix = ''): SubsetUse[] {
  return rules.flatMap((rule, i) => [
    ...Object.keys(rule.split ?? {}).map((subset): SubsetUse => [`${prefix}[${i}].split.${subset}`, subset]),
    ...(rule.mirror ? [[`${prefix}[${i}].mirror.subset`, rule.mirror.subset] as const] : []),
  ]);
}

/** Subsets a rule may name: the `declared` ones and the version label of each instance. */
export function knownSubsets(declared: Iterable<string>, instances: Iterable<{ readonly labels: Readonly<Record<string, string>> }>): Set<string> {
  const known = new Set(declared);
  for (const instance of instances) {
    if (instance.labels.version) known.add(instance.labels.version);
  }
  return known;
}

/** `path: unknown subset …` for each use whose subset is not in `known`. */
export function unknownSubsetProblems(service: string, uses: readonly SubsetUse[], known: ReadonlySet<string>): string[] {
  return uses.filter(([, subset]) => !known.has(subset)).map(([path, subset]) => `${path}: ${unknownSubset(service, subset)}`);
}

/**
 * The problems of a snapshot whose endpoints are all in it (a static file read without
 * --consul), e.g. `routes.catalog[0].split.V2: unknown subset "V2" of catalog: …`. A service
 * the snapshot lists no endpoints for is not judged: every request to it fails alike, so no
 * rule fails quietly, and emptying a service's endpoints must not need its routes edited.
 */
export function snapshotSubsetProblems(snapshot: Pick<Snapshot, 'services' | 'routes'>): string[] {
  const known = (service: string): Set<string> | undefined => {
    const policy = ownEntry(snapshot.services, service);
    return policy?.endpoints?.length ? knownSubsets(Object.keys(policy.subsets), policy.endpoints) : undefined;
  };
  const routes = Object.entries(snapshot.routes).flatMap(([service, rules]) => {
    const subsets = known(service);
    return subsets === undefined ? [] : unknownSubsetProblems(service, subsetUses(rules, `routes.${service}`), subsets);
  });
  const failovers = Object.entries(snapshot.services).flatMap(([service, policy]) =>
    failoverSubsetUses(service, policy.failover).flatMap(([target, uses]) => {
      const subsets = known(target);
      return subsets === undefined ? [] : unknownSubsetProblems(target, uses, subsets);
    }),
  );
  return [...routes, ...failovers];
}

/**
 * The subsets a service's failover lists name, by the service they are of, each with its path
 * (`services.catalog.failover.v2` for a list's own subset, `…v2[0].subset` for a target's).
 */
function failoverSubsetUses(service: string, failover: ServicePolicy['failover']): [service: string, uses: SubsetUse[]][] {
  const uses = new Map<string, SubsetUse[]>([[service, []]]);
  const use = (of: string, path: string, subset: string) => {
    if (!uses.has(of)) uses.set(of, []);
    uses.get(of)!.push([path, subset]);
  };
  for (const [key, targets] of Object.entries(failover ?? {})) {
    const path = `services.${service}.failover.${key}`;
    if (key !== ALL_ENDPOINTS) use(service, path, key);
    targets.forEach((t, i) => {
      if (t.subset !== undefined) use(t.service ?? service, `${path}[${i}].subset`, t.subset);
    });
  }
  return [...uses];
}

function unknownSubset(service: string, subset: string): string {
  return `unknown subset "${subset}" of ${service}: not declared in its policy and no instance has version=${subset}`;
}
