/**
 * Failover lists (`services.<name>.failover`) read as the sidecars apply them, for the sidecar's
 * compile step and `skein explain` alike: a subset's own list, else `*`'s, with `service` and
 * `subset` filled in, and without targets a request cannot go to: the subset itself (a `*` list
 * may name it), a target twice, a service the snapshot does not list (a pushed snapshot may lose
 * one with its last instance; a written one is refused for it) or one of another protocol.
 */
import { ownEntry } from '../config/own.js';
import type { Snapshot } from '../config/schema.js';
import { ALL_ENDPOINTS } from './split.js';

export interface FailoverStep {
  readonly service: string;
  /** `*` for the service's catch-all over all its endpoints. */
  readonly subset: string;
}

/** A target of the list that is left out, and why (`skein explain` says so: the control plane takes a policy naming a service it does not know yet). */
export interface SkippedFailoverStep extends FailoverStep {
  readonly why: string;
}

/** Where `service`'s `subset` fails over to, in order; empty for nowhere. */
export function failoverSteps(services: Snapshot['services'], service: string, subset: string): FailoverStep[] {
  return readFailover(services, service, subset).steps;
}

/** `service`'s `subset`'s list as the sidecars apply it (`steps`), and the targets they leave out of it with why, the subset itself and repeats aside. */
export function readFailover(services: Snapshot['services'], service: string, subset: string): { steps: FailoverStep[]; skipped: SkippedFailoverStep[] } {
  const policy = ownEntry(services, service);
  const failover = policy?.failover;
  const list = failover === undefined ? undefined : (ownEntry(failover, subset) ?? ownEntry(failover, ALL_ENDPOINTS));
  const steps: FailoverStep[] = [];
  const skipped: SkippedFailoverStep[] = [];
  for (const t of list ?? []) {
    const step = { service: t.service ?? service, subset: t.subset ?? ALL_ENDPOINTS };
    if ((step.service === service && step.subset === subset) || steps.some((s) => s.service === step.service && s.subset === step.subset)) continue;
    const protocol = ownEntry(services, step.service)?.protocol;
    if (protocol === undefined) skipped.push({ ...step, why: `${step.service} is not in the snapshot` });
    else if (protocol !== policy!.protocol) skipped.push({ ...step, why: `${step.service} speaks ${protocol}, ${service} ${policy!.protocol}` });
    else steps.push(step);
  }
  return { steps, skipped };
}

/** Per service, every subset a failover list sends to: a sidecar builds them with the service's runtime, as it does its rules'. */
export function failoverSubsetsByService(services: Snapshot['services']): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const [service, policy] of Object.entries(services)) {
    for (const targets of Object.values(policy.failover ?? {})) {
      for (const t of targets) {
        const of = t.service ?? service;
        let subsets = out.get(of);
        if (subsets === undefined) out.set(of, (subsets = new Set()));
        subsets.add(t.subset ?? ALL_ENDPOINTS);
      }
    }
  }
  return out;
}
