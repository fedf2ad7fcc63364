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
import { ruleName, type HashOn, type IntentionRuleInput, type RouteRuleInput, type ServicePolicyInput, type SnapshotInput } from './schema.js';

/** What this build's schema understands beyond the baseline; its sidecars send it in their Hello. */
export const SNAPSHOT_FEATURES = ['ring-hash', 'rate-limit', 'only-passing', 'route-changes', 'retry-status-codes', 'l7-intentions', 'failover'] as const;

export type SnapshotFeature = (typeof SNAPSHOT_FEATURES)[number];

/** One use of a feature a sidecar was sent the snapshot without. */
export interface LeftOut {
  readonly feature: SnapshotFeature;
  /** `*` for an intention rule of every destination. */
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

/** The fields of one kind of object (a service's policy, a route rule, an intention rule) an older schema refuses. */
interface Dropped<T> {
  /** Dropped where `uses` holds. */
  readonly fields: readonly (keyof T)[];
  uses(item: T): boolean;
  /** What goes in their place: the part of them an older schema takes, or what it requires there (absent: they go whole). */
  instead?(item: T): Partial<T>;
  /** What dropping them costs; absent when it costs a sidecar older than the feature nothing. */
  loss?(service: string, item: T, index: number): Omit<LeftOut, 'feature' | 'service'>;
}

/** Each kind of object a feature's fields are in; most features have one. */
interface FeatureFields {
  readonly policy?: Dropped<ServicePolicyInput>;
  readonly rule?: Dropped<RouteRuleInput>;
  readonly intention?: Dropped<IntentionRuleInput>;
}

/**
 * Each feature's fields, and what a sidecar runs instead without them. Dropping is enough for
 * most: the older sidecar then does what it did before the feature (its default balancer,
 * no limit, the request forwarded as the caller sent it). An intention rule cannot go without
 * a decision, so one with permissions becomes a deny.
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
        means: `${service}: rule ${ruleName(r, index)} forwards the request and passes the answer back as they are, without its ${changesOf(r)}`,
      }),
    },
  },
  // A service's retries and a rule's alike: the named conditions stay, so an older caller
  // still retries what they cover and relays the listed statuses' answers as they come.
  'retry-status-codes': {
    policy: droppedStatuses((service) => `${service}:`),
    rule: droppedStatuses((service, r, index) => `${service}: rule ${ruleName(r, index)}`),
  },
  // An older schema requires a rule's action. Deny, not allow: such a sidecar refuses calls a
  // permission would allow rather than admit ones a permission would deny (fail closed). The
  // rule stays where it was, so it still governs its pair as it does with its permissions.
  'l7-intentions': {
    intention: {
      fields: ['permissions'],
      instead: () => ({ action: 'deny' }),
      uses: (r) => r.permissions !== undefined,
      loss: (service, r) => ({
        changes: 'instances',
        means: `${service === '*' ? 'every service' : service}: denies every call from ${r.source === '*' ? 'any service' : r.source} (its intention's HTTP permissions need a newer sidecar)`,
      }),
    },
  },
  failover: {
    policy: {
      fields: ['failover'],
      uses: (p) => p.failover !== undefined,
      loss: (service, p) => ({ changes: 'callers', means: `${service}: no failover (${Object.keys(p.failover!).join(', ')}): a subset with no healthy endpoint is answered 503 no-healthy-endpoints` }),
    },
  },
};

/**
 * What a sidecar of `service` runs without of `leftOut`: every loss its callers see, and those
 * only instances see when they are its own (or, `*`, every service's).
 */
export function runsWithoutAs(service: string, leftOut: readonly LeftOut[]): string[] {
  return leftOut.filter((l) => l.changes === 'callers' || l.service === service || l.service === '*').map((l) => l.means);
}

/** The features of this list a sidecar that names `understood` lacks (names this build does not know are ignored). */
export function lackedFeatures(understood: readonly string[]): SnapshotFeature[] {
  return SNAPSHOT_FEATURES.filter((f) => !understood.includes(f));
}

/**
 * The snapshot a sidecar lacking `lacked` is sent, and what it runs without. Fields are only
 * removed, or an intention's permissions replaced by an action, so it is never larger than
 * `snapshot` (the size limit checked on the whole one holds for it) and its version stays the
 * snapshot's own, for ACKs to name.
 */
export function snapshotWithout(snapshot: SnapshotInput, lacked: readonly SnapshotFeature[]): SnapshotVariant {
  const leftOut: LeftOut[] = [];
  const policyDrops = dropsOf(lacked, 'policy');
  const ruleDrops = dropsOf(lacked, 'rule');
  const intentionDrops = dropsOf(lacked, 'intention');
  const services = withoutIn(snapshot.services, (service, policy) => without(service, policy, 0, policyDrops, leftOut));
  const routes = withoutIn(snapshot.routes, (service, rules) => withoutEach(rules, (rule, index) => without(service, rule, index, ruleDrops, leftOut)));
  // An intention rule's service is its destination: the sidecars that enforce it.
  const intentionRules = snapshot.intentions?.rules;
  const keptRules = intentionRules && withoutEach(intentionRules, (rule, index) => without(rule.destination, rule, index, intentionDrops, leftOut));
  const intentions = keptRules === intentionRules ? snapshot.intentions : { ...snapshot.intentions, rules: keptRules };
  if (services === snapshot.services && routes === snapshot.routes && intentions === snapshot.intentions) return { snapshot, leftOut };
  return { snapshot: { ...snapshot, services, routes, intentions }, leftOut };
}

/** The drops of one kind of object of the features `lacked`, in the list's order. */
function dropsOf<K extends keyof FeatureFields>(lacked: readonly SnapshotFeature[], kind: K): { feature: SnapshotFeature; drop: NonNullable<FeatureFields[K]> }[] {
  return lacked.flatMap((feature) => {
    const drop = FEATURES[feature][kind];
    return drop === undefined ? [] : [{ feature, drop: drop as NonNullable<FeatureFields[K]> }];
  });
}

/** `items` with `each` applied: itself when no item changed (no copy made). */
function withoutEach<T>(items: readonly T[], each: (item: T, index: number) => T): T[] {
  let kept: T[] | undefined;
  items.forEach((item, index) => {
    const next = each(item, index);
    if (next === item) return;
    kept ??= [...items];
    kept[index] = next;
  });
  return kept ?? (items as T[]);
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
    if (drop.instead) Object.assign(kept, drop.instead(item));
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
    instead: (item) => ({ retries: { ...item.retries, on: item.retries!.on!.filter((c) => typeof c !== 'number') } }) as Partial<T>,
    loss: (service, item, index) => ({ changes: 'callers', means: `${whose(service, item, index)} does not retry ${statuses(item).join(', ')}` }),
  };
}
