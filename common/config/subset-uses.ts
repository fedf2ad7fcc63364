/**
 * Whether the subsets a service's rules name (in a split or a mirror) select anything: a
 * subset is known when the service's policy declares it or an instance carries it as its
 * `version` label (SPEC §4). A rule naming an unknown one would fail only at its requests
 * (503 no-healthy-endpoints for its share, mirror copies dropped), so where the whole set of
 * instances is known it is refused up front: by the control plane against the instances it
 * knows, by a static sidecar without --consul against the endpoints its file lists.
 */
import { ownEntry } from './own.js';
import type { Snapshot } from './schema.js';

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
  return Object.entries(snapshot.routes).flatMap(([service, rules]) => {
    const policy = ownEntry(snapshot.services, service);
    if (!policy?.endpoints?.length) return [];
    return unknownSubsetProblems(service, subsetUses(rules, `routes.${service}`), knownSubsets(Object.keys(policy.subsets), policy.endpoints));
  });
}

function unknownSubset(service: string, subset: string): string {
  return `unknown subset "${subset}" of ${service}: not declared in its policy and no instance has version=${subset}`;
}
