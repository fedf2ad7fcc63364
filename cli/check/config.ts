/**
 * `skein check`'s config group: intentions' default, stored entries not in force, splits to
 * subsets with no healthy instance, canary rollouts paused or rolled back.
 */
import { ruleName } from '../../common/config/schema.js';
import type { ServiceView } from '../../control-plane/admin-api/services-routes.js';
import type { CanaryState } from '../../control-plane/canary/controller.js';
import type { IntentionsAnswer, RouteRuleAnswer } from '../answers.js';
import { selectedInstances } from '../service-subsets.js';
import { count, type CheckResult } from './result.js';

/** `intentions` undefined: none stored (a 404), when the mesh allows every call. */
export function judgeDefaultAction(intentions: IntentionsAnswer | undefined): CheckResult {
  const base = { name: 'intentions-default', group: 'config' } as const;
  const hint = 'allow the calls you expect (skein intention allow SOURCE DEST), then skein intention default deny; Consul and Istio recommend deny by default';
  if (intentions === undefined) return { ...base, status: 'warning', message: 'no intentions configured: every service may call every other', hint };
  // Stored without a default, intentions deny (as `skein get intentions` shows them).
  if ((intentions.defaultAction ?? 'deny') === 'allow') {
    return { ...base, status: 'warning', message: `intentions allow by default: any service may call any other that no rule denies (${count(intentions.rules?.length ?? 0, 'rule')})`, hint };
  }
  return { ...base, status: 'ok', message: `intentions deny by default (${count(intentions.rules?.length ?? 0, 'rule')})` };
}

/** A stored policy or routes entry that fails its schema is not in force: the service runs without it. */
export function judgeStoredConfig(services: readonly ServiceView[]): CheckResult {
  const base = { name: 'stored-config', group: 'config' } as const;
  const refused = services.filter((s) => (s.problems ?? []).length > 0);
  if (refused.length === 0) return { ...base, status: 'ok', message: 'every stored policy and route entry is in force' };
  return {
    ...base,
    status: 'failure',
    message: `stored config of ${count(refused.length, 'service')} is refused and not in force`,
    details: refused.flatMap((s) => s.problems!.map((p) => `${s.name}: ${p}`)),
    hint: 'write it again (skein apply -f FILE), or fix the entry in the store',
  };
}

/** Rules whose split sends traffic to a subset with no healthy instance: those requests fail (or fail over, where the policy says). */
export function judgeSplitSubsets(routes: Readonly<Record<string, readonly RouteRuleAnswer[]>>, services: readonly ServiceView[]): CheckResult {
  const base = { name: 'split-subsets', group: 'config' } as const;
  const details: string[] = [];
  for (const [service, rules] of Object.entries(routes)) {
    const view = services.find((s) => s.name === service);
    rules.forEach((rule, index) => {
      for (const [name, weight] of Object.entries(rule.split ?? {})) {
        if (weight <= 0) continue;
        const subset = view?.subsets.find((s) => s.name === name);
        const selected = view && subset ? selectedInstances(view, subset) : [];
        const healthy = selected.filter((i) => i.health === 'healthy').length;
        if (healthy > 0) continue;
        const has = selected.length === 0 ? 'which no instance has' : `none of whose ${count(selected.length, 'instance')} is healthy`;
        details.push(`${service} rule ${ruleName(rule, index)} sends ${weight}% to subset ${name}, ${has}`);
      }
    });
  }
  if (details.length === 0) return { ...base, status: 'ok', message: 'every split sends traffic to subsets with healthy instances' };
  return {
    ...base,
    status: 'warning',
    message: `${count(details.length, 'split')} send traffic to a subset with no healthy instance`,
    details,
    hint: 'start instances of the subset, or move the split (skein split SERVICE SUBSET=W...); see skein get services',
  };
}

/** The latest rollout of each service that has had one: paused by hand, or rolled back by its analysis. */
export function judgeCanaries(canaries: readonly CanaryState[]): CheckResult {
  const base = { name: 'canaries', group: 'config' } as const;
  const details: string[] = [];
  for (const c of canaries) {
    const what = `${c.service}: ${c.spec.from} → ${c.spec.to}`;
    const reason = (text: string | undefined) => (text ? `: ${text}` : '');
    if (c.status === 'running' && c.paused) details.push(`${what} paused at ${c.weight}% ${c.spec.to} since ${c.paused.at}${reason(c.paused.reason)}`);
    else if (c.status === 'rolled-back') details.push(`${what} rolled back${c.endedAt ? ` at ${c.endedAt}` : ''}${reason(c.reason)}`);
  }
  const running = canaries.filter((c) => c.status === 'running' && !c.paused).length;
  if (details.length === 0) return { ...base, status: 'ok', message: running > 0 ? `${count(running, 'canary rollout')} running, none paused or rolled back` : 'no canary rollout paused or rolled back' };
  return {
    ...base,
    status: 'warning',
    message: `${count(details.length, 'canary rollout')} paused or rolled back`,
    details,
    hint: 'see skein canary SERVICE --status; a paused one moves on with --resume or --promote, a rolled-back one stays at its from subset until a new rollout starts',
  };
}
