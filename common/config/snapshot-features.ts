/**
 * Snapshot features: parts of the SPEC §4 model added after the baseline a sidecar may have
 * been built with. A sidecar validates a pushed snapshot whole against its own schema, which
 * takes no unknown field, so one built before a feature NACKs every snapshot that uses it and
 * stops taking updates (endpoints included) until it is upgraded. Sidecars therefore name in
 * their Hello the features they understand, and the control plane pushes each one the
 * snapshot without what it does not (as istiod generates config per proxy version), saying
 * what that sidecar then runs without. A sidecar that names none (every one built before
 * this list) understands none of them.
 */
import type { HashOn, RouteRuleInput, ServicePolicyInput, SnapshotInput } from './schema.js';

/** What this build's schema understands beyond the baseline; its sidecars send it in their Hello. */
export const SNAPSHOT_FEATURES = ['ring-hash', 'rate-limit', 'only-passing', 'route-changes', 'retry-status-codes'] as const;

export type SnapshotFeature = (typeof SNAPSHOT_FEATURES)[number];

/** One use of a feature a sidecar was sent the snapshot without. */
export interface LeftOut {
  readonly feature: SnapshotFeature;
  readonly service: string;
  /** What a sidecar without it does instead, e.g. `orders: not rate limited by this instance`. */
  readonly means: string;
  /**
   * Whose sidecars it changes: every caller of `service` (how they pick its endpoints), or only
   * `service`'s own instances (what they admit).
   */
  readonly changes: 'callers' | 'instances';
}

export interface SnapshotVariant {
  /** The snapshot itself when it uses nothing left out (no copy is made). */
  readonly snapshot: SnapshotInput;
  readonly leftOut: readonly LeftOut[];
}

/** The fields of one kind of object (a service's policy, a route rule) an older schema refuses. */
interface Dropped<T> {
  /** Dropped where `uses` holds. */
  readonly fields: readonly (keyof T)[];
  uses(item: T): boolean;
  /** What is put back of `fields` when the feature is only part of them (absent: they go whole). */
  keep?(item: T): Partial<T>;
  /** What dropping them costs; absent when it costs a sidecar older than the feature nothing. */
  loss?(service: string, item: T, index: number): Omit<LeftOut, 'feature' | 'service'>;
}

type FeatureFields =
  | { readonly policy: Dropped<ServicePolicyInput> }
  | { readonly rule: Dropped<RouteRuleInput> }
  | { readonly policy: Dropped<ServicePolicyInput>; readonly rule: Dropped<RouteRuleInput> };

/**
 * Each feature's fields, and what a sidecar runs instead without them. Dropping is enough for
 * these: the older sidecar then does what it did before the feature (its default balancer,
 * no limit, the request forwarded as the caller sent it).
 */
const FEATURES: Readonly<Record<SnapshotFeature, FeatureFields>> = {
  'ring-hash': {
    policy: {
      fields: ['lb', 'hashOn'],
      uses: (p) => p.lb === 'ring-hash' || p.hashOn !== undefined,
      loss: (service, p) => ({ changes: 'callers', means: `${service}: balanced by least-request, not ring-hash on ${hashedValue(p.hashOn)}, so requests lose their affinity` }),
    },
  },
  'rate-limit': {
    policy: {
      fields: ['rateLimit'],
      uses: (p) => p.rateLimit !== undefined,
      loss: (service) => ({ changes: 'instances', means: `${service}: not rate limited by this instance` }),
    },
  },
  // Refused by an older schema however it is set, but dropping it costs such a sidecar nothing:
  // the endpoints pushed already leave a service's instances in warning out when it is set
  // (state/compose.ts), and a sidecar built before the field (ede47ed, 2026-12-07) that reads
  // Consul itself asks it for passing instances alone.
  'only-passing': {
    policy: {
      fields: ['onlyPassing'],
      uses: (p) => p.onlyPassing !== undefined,
    },
  },
  // Not dropping the rule: its match and split still route as written, which matters more than
  // the changes it makes to what it forwards.
  'route-changes': {
    rule: {
      fields: ['rewrite', 'requestHeaders', 'responseHeaders'],
      uses: (r) => r.rewrite !== undefined || r.requestHeaders !== undefined || r.responseHeaders !== undefined,
      loss: (service, r, index) => ({
        changes: 'callers',
        means: `${service}: rule ${r.name ?? `rule-${index}`} forwards the request and passes the answer back as they are, without its ${changesOf(r)}`,
      }),
    },
  },
  // A service's retries and a rule's alike: the named conditions stay, so an older caller
  // still retries what they cover and relays the listed statuses' answers as they come.
  'retry-status-codes': {
    policy: droppedStatuses((service) => `${service}:`),
    rule: droppedStatuses((service, r, index) => `${service}: rule ${r.name ?? `rule-${index}`}`),
  },
};

/** The features of this list a sidecar that names `understood` lacks (names this build does not know are ignored). */
export function lackedFeatures(understood: readonly string[]): SnapshotFeature[] {
  return SNAPSHOT_FEATURES.filter((f) => !understood.includes(f));
}

/**
 * The snapshot a sidecar lacking `lacked` is sent, and what it runs without. Only policy
 * fields are removed, so it is never larger than `snapshot` (the size limit checked on the
 * whole one holds for it) and its version stays the snapshot's own, for ACKs to name.
 */
export function snapshotWithout(snapshot: SnapshotInput, lacked: readonly SnapshotFeature[]): SnapshotVariant {
  const leftOut: LeftOut[] = [];
  const policyDrops = lacked.flatMap((feature) => ('policy' in FEATURES[feature] ? [{ feature, drop: FEATURES[feature].policy }] : []));
  const ruleDrops = lacked.flatMap((feature) => ('rule' in FEATURES[feature] ? [{ feature, drop: FEATURES[feature].rule }] : []));
  const services = withoutIn(snapshot.services, (service, policy) => without(service, policy, 0, policyDrops, leftOut));
  const routes = withoutIn(snapshot.routes, (service, rules) => {
    let kept: RouteRuleInput[] | undefined;
    rules.forEach((rule, index) => {
      const next = without(service, rule, index, ruleDrops, leftOut);
      if (next === rule) return;
      kept ??= [...rules];
      kept[index] = next;
    });
    return kept ?? rules;
  });
  if (services === snapshot.services && routes === snapshot.routes) return { snapshot, leftOut };
  return { snapshot: { ...snapshot, services, routes }, leftOut };
}

/** `record` with `each` applied to its values: itself when no value changed (no copy made). */
function withoutIn<T>(record: Record<string, T> | undefined, each: (key: string, value: T) => T): Record<string, T> | undefined {
  let copy: Record<string, T> | undefined;
  for (const [key, value] of Object.entries(record ?? {})) {
    const kept = each(key, value);
    if (kept === value) continue;
    copy ??= { ...record };
    copy[key] = kept;
  }
  return copy ?? record;
}

/** `item` without the fields of each drop it uses, each loss listed in `leftOut`; itself when it uses none. */
function without<T extends object>(service: string, item: T, index: number, drops: readonly { feature: SnapshotFeature; drop: Dropped<T> }[], leftOut: LeftOut[]): T {
  let kept = item;
  for (const { feature, drop } of drops) {
    if (!drop.uses(item)) continue;
    if (drop.loss) leftOut.push({ feature, service, ...drop.loss(service, item, index) });
    kept = { ...kept };
    for (const field of drop.fields) delete kept[field];
    if (drop.keep) Object.assign(kept, drop.keep(item));
  }
  return kept;
}

function changesOf(rule: RouteRuleInput): string {
  const parts = [
    ...(rule.rewrite?.pathPrefix !== undefined ? [`path rewrite to ${rule.rewrite.pathPrefix}`] : []),
    ...(rule.rewrite?.host !== undefined ? [`Host rewrite to ${rule.rewrite.host}`] : []),
    ...(rule.requestHeaders !== undefined ? ['request header changes'] : []),
    ...(rule.responseHeaders !== undefined ? ['response header changes'] : []),
  ];
  return parts.join(', ');
}

function hashedValue(on: HashOn | undefined): string {
  if (on?.header !== undefined) return `header ${on.header}`;
  if (on?.cookie !== undefined) return `cookie ${on.cookie}`;
  if (on?.query !== undefined) return `query parameter ${on.query}`;
  return 'a request value';
}

type RetriesInput = NonNullable<ServicePolicyInput['retries'] | RouteRuleInput['retries']>;

/**
 * A service's or a rule's retries without their status codes (`whose` names it): the named
 * conditions stay, so an older caller still retries what they cover and relays the listed
 * statuses' answers as they come.
 */
function droppedStatuses<T extends { readonly retries?: RetriesInput }>(whose: (service: string, item: T, index: number) => string): Dropped<T> {
  const statuses = (item: T): number[] => (item.retries?.on ?? []).filter((c): c is number => typeof c === 'number');
  return {
    fields: ['retries'],
    uses: (item) => statuses(item).length > 0,
    keep: (item) => ({ retries: { ...item.retries, on: item.retries!.on!.filter((c) => typeof c !== 'number') } }) as Partial<T>,
    loss: (service, item, index) => ({ changes: 'callers', means: `${whose(service, item, index)} does not retry ${statuses(item).join(', ')}` }),
  };
}
