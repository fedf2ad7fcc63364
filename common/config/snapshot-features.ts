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
import type { HashOn, ServicePolicyInput, SnapshotInput } from './schema.js';

/** What this build's schema understands beyond the baseline; its sidecars send it in their Hello. */
export const SNAPSHOT_FEATURES = ['ring-hash', 'rate-limit', 'only-passing'] as const;

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

interface FeatureFields {
  /** The policy fields an older schema refuses, dropped where `uses` holds. */
  readonly fields: readonly (keyof ServicePolicyInput)[];
  uses(policy: ServicePolicyInput): boolean;
  /** What dropping them costs; absent when it costs a sidecar older than the feature nothing. */
  loss?(service: string, policy: ServicePolicyInput): Omit<LeftOut, 'feature' | 'service'>;
}

/**
 * Each feature's fields, and what a sidecar runs instead without them. Dropping is enough for
 * these: the older sidecar then does what it did before the feature (its default balancer,
 * no limit).
 */
const FEATURES: Readonly<Record<SnapshotFeature, FeatureFields>> = {
  'ring-hash': {
    fields: ['lb', 'hashOn'],
    uses: (p) => p.lb === 'ring-hash' || p.hashOn !== undefined,
    loss: (service, p) => ({ changes: 'callers', means: `${service}: balanced by least-request, not ring-hash on ${hashedValue(p.hashOn)}, so requests lose their affinity` }),
  },
  'rate-limit': {
    fields: ['rateLimit'],
    uses: (p) => p.rateLimit !== undefined,
    loss: (service) => ({ changes: 'instances', means: `${service}: not rate limited by this instance` }),
  },
  // Refused by an older schema however it is set, but dropping it costs such a sidecar nothing:
  // the endpoints pushed already leave a service's instances in warning out when it is set
  // (state/compose.ts), and a sidecar built before the field (ede47ed, 2026-12-07) that reads
  // Consul itself asks it for passing instances alone.
  'only-passing': {
    fields: ['onlyPassing'],
    uses: (p) => p.onlyPassing !== undefined,
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
  let services: Record<string, ServicePolicyInput> | undefined;
  for (const [service, policy] of Object.entries(snapshot.services ?? {})) {
    let kept = policy;
    for (const feature of lacked) {
      const { fields, uses, loss } = FEATURES[feature];
      if (!uses(policy)) continue;
      if (loss) leftOut.push({ feature, service, ...loss(service, policy) });
      kept = withoutFields(kept, fields);
    }
    if (kept === policy) continue;
    services ??= { ...snapshot.services };
    services[service] = kept;
  }
  return { snapshot: services ? { ...snapshot, services } : snapshot, leftOut };
}

function withoutFields(policy: ServicePolicyInput, fields: readonly (keyof ServicePolicyInput)[]): ServicePolicyInput {
  const kept = { ...policy };
  for (const field of fields) delete kept[field];
  return kept;
}

function hashedValue(on: HashOn | undefined): string {
  if (on?.header !== undefined) return `header ${on.header}`;
  if (on?.cookie !== undefined) return `cookie ${on.cookie}`;
  if (on?.query !== undefined) return `query parameter ${on.query}`;
  return 'a request value';
}
