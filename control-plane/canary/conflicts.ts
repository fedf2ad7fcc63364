/**
 * What a config write does to a running canary rollout, and the 409 it gets for it.
 *
 * A rollout owns two things of its service while it runs (as Flagger or Argo Rollouts own
 * the VirtualService of a canary): the service's **route rules**, whose catch-all split it
 * moves step by step, and the **selectors of its two subsets** (`from` and `to`), which say
 * which instances that split sends traffic to. A write "touches" the rollout when, applied,
 * it would leave either different:
 *
 * - routes: any change to `routes/{service}` (PUT or DELETE of the routes, a PUT of the
 *   split, the `routes.X` of an apply file). Not only the catch-all rule: a rule added before
 *   it (a header match, a new path) takes traffic the rollout is measuring, and a changed
 *   mirror, fault or retry override changes what it measures. Compared after the schema's
 *   defaults are applied (so `3s` and `3000ms`, or an absent default, are the same), so
 *   writing back exactly what is stored, e.g. `skein split` to the step's own weights or a
 *   GitOps loop re-applying an unchanged file, is not a conflict.
 * - subsets: the label selector that `from` or `to` resolves to in the service's policy
 *   (a PUT or DELETE of the policy, the `services.X` of an apply file). An undeclared subset
 *   selects `version=<name>`, so declaring `v2: {version: v2}` or deleting a policy that
 *   declared exactly that changes nothing; retargeting `v2` at other labels, or dropping a
 *   `from` that was declared with other labels, does. The rest of the policy (timeouts,
 *   retries, breaker, other subsets) is the operator's to tune during a rollout.
 *
 * Writes to other services, and intentions, never touch a rollout. A touching write is
 * refused whole (409, nothing written) unless forced; a forced one aborts the rollout first
 * (restoring `from`=100, recorded as aborted by that write) and is then written.
 */
import { ownEntry } from '../../common/config/own.js';
import { isDeepStrictEqual } from 'node:util';
import { policyBody, routesBody } from '../state/resources.js';

/** The part of a running rollout a write is judged against (and the 409 names). */
export interface RunningCanary {
  readonly service: string;
  readonly from: string;
  readonly to: string;
  /** Index into steps. */
  readonly step: number;
  readonly steps: readonly number[];
  readonly weight: number;
}

export interface CanaryConflict {
  readonly canary: RunningCanary;
  /** What the write would change, e.g. `its routes`, `the selector of subset v2`. */
  readonly changes: readonly string[];
  /** Where in an apply file, e.g. `routes.backend`; absent for a single-resource write. */
  readonly where?: readonly string[];
}

/** A write refused because it touches running rollouts: answered 409 with each one named. */
export class RunningCanaryError extends Error {
  override name = 'RunningCanaryError';
  constructor(readonly conflicts: readonly CanaryConflict[]) {
    super(conflictMessage(conflicts));
  }
}

/** `step 2 of 4 at 25% v2` */
export function describeStep(canary: RunningCanary): string {
  return `${canary.from} → ${canary.to}, step ${canary.step + 1} of ${canary.steps.length} at ${canary.weight}% ${canary.to}`;
}

export function conflictMessage(conflicts: readonly CanaryConflict[]): string {
  const each = conflicts.map(
    (c) =>
      `a canary rollout of ${c.canary.service} is running (${describeStep(c.canary)}) and this write would change ${c.changes.join(' and ')}` +
      (c.where && c.where.length > 0 ? ` (${c.where.join(', ')})` : ''),
  );
  const services = conflicts.map((c) => c.canary.service);
  const abort = services.map((s) => `skein canary ${s} --abort`).join(', ');
  const deletes = services.map((s) => `DELETE /api/v1/canaries/${s}`).join(', ');
  return (
    `${each.join('; ')}; nothing was written. ` +
    `Abort the rollout first (${abort}, or ${deletes}), ` +
    `or repeat the write with force (?force=true; skein apply --force, skein split --force), which aborts the rollout and then writes`
  );
}

/** The structured part of the 409 body: one entry per rollout. */
export function conflictDetails(conflicts: readonly CanaryConflict[]): Record<string, unknown>[] {
  return conflicts.map((c) => ({
    service: c.canary.service,
    from: c.canary.from,
    to: c.canary.to,
    step: c.canary.step,
    steps: c.canary.steps,
    weight: c.canary.weight,
    changes: c.changes,
    ...(c.where ? { where: c.where } : {}),
    abort: `DELETE /api/v1/canaries/${c.canary.service}`,
  }));
}

/** Whether writing `after` (undefined: deleting) over the stored routes `before` changes them. */
export function routesChange(before: unknown, after: unknown): boolean {
  if (before === undefined || after === undefined) return before !== after;
  const a = routesBody.safeParse(before);
  const b = routesBody.safeParse(after);
  // A stored value the schema refuses is compared as it is.
  return !isDeepStrictEqual(a.success ? a.data : before, b.success ? b.data : after);
}

/** The label selector a subset resolves to under a policy: declared, or `version=<name>`. */
function selectorOf(policy: unknown, subset: string): Record<string, string> {
  const parsed = policyBody.safeParse(policy ?? {});
  const declared = ownEntry(parsed.success ? parsed.data.subsets : (policy as { subsets?: Record<string, Record<string, string>> } | undefined)?.subsets, subset);
  return declared ?? { version: subset };
}

/** What replacing the policy `before` with `after` (undefined: none) changes of the rollout's subsets. */
export function subsetChanges(canary: RunningCanary, before: unknown, after: unknown): string[] {
  return [canary.from, canary.to]
    .filter((subset) => !isDeepStrictEqual(selectorOf(before, subset), selectorOf(after, subset)))
    .map((subset) => `the selector of subset ${subset}`);
}
