/**
 * Where a split of a service's traffic (`PUT /api/v1/routes/{service}/split`, each step of a
 * canary rollout) is written in its rules. Rules are matched first to last, so weights steer
 * the service's traffic only in the first rule every request matches (its catch-all: no
 * method, header or path check but the prefix `/`, however it is spelt), and only when no
 * rule before it takes ordinary requests away.
 *
 * A rule before it that matches only requests carrying a header (`x-canary: "true"` → v2) is
 * allowed: it pins opted-in requests, e.g. testers forcing the canary, the way Flagger's
 * header matches and Argo Rollouts' header routes sit in front of the weighted route they
 * manage. Any other rule before it (by method, by path, or by a header's absence) takes
 * ordinary requests the split would never see, so the split is refused (ShadowedSplitError)
 * rather than written where it would steer part of the traffic, or none of it.
 */
import { compileRoutes } from '../../common/routing/table.js';
import { routesBody, type RoutesInput } from './resources.js';

/** A rule that takes ordinary requests before the split's rule. */
export interface ShadowingRule {
  readonly index: number;
  readonly name: string;
  /** Its match as stored. */
  readonly match: unknown;
}

/** A split refused because earlier rules would keep some of the service's requests from it; nothing was written. */
export class ShadowedSplitError extends Error {
  override name = 'ShadowedSplitError';
  constructor(
    readonly service: string,
    readonly shadowing: readonly ShadowingRule[],
    /** The catch-all rule the split would go in; undefined when the service has none and one would be added last. */
    readonly target: { readonly index: number; readonly name: string } | undefined,
  ) {
    super(shadowedMessage(service, shadowing, target));
  }
}

function shadowedMessage(service: string, shadowing: readonly ShadowingRule[], target: ShadowedSplitError['target']): string {
  const one = shadowing.length === 1;
  const rules = shadowing.map((r) => `rule ${r.index} "${r.name}" (match ${JSON.stringify(r.match)})`).join(', ');
  const where = target ? `its catch-all rule ${target.index} "${target.name}"` : 'the catch-all rule that would be added last (it has none)';
  return (
    `a split of ${service} would not steer all its traffic: ${rules} ${one ? 'comes' : 'come'} before ${where} and ${one ? 'takes' : 'take'} ` +
    `requests that carry no opt-in header, which would never reach the split; nothing was written. Set the weights in the rules themselves ` +
    `(PUT /api/v1/routes/${service}, skein apply), or have ${one ? 'that rule' : 'those rules'} match on a header the requests opt in with`
  );
}

/** `rules` with `weights` as the split of the service's catch-all rule (one added last when it has none); throws ShadowedSplitError as above. */
export function withSplit(service: string, rules: RoutesInput | undefined, weights: Record<string, number>): RoutesInput {
  const next = structuredClone(rules ?? []);
  // The sidecars' own compiled matches say what each rule takes (no rules: nothing does).
  const compiled = next.length === 0 ? [] : compileRoutes(routesBody.parse(next)).rules;
  const target = compiled.find((rule) => rule.match.matchesAll);
  const before = compiled.slice(0, target ? target.index : compiled.length);
  const shadowing = before.filter((rule) => !rule.match.needsHeader).map((rule) => ({ index: rule.index, name: rule.name, match: next[rule.index]!.match ?? {} }));
  if (shadowing.length > 0) throw new ShadowedSplitError(service, shadowing, target && { index: target.index, name: target.name });
  if (target) next[target.index] = { ...next[target.index]!, split: weights };
  else next.push({ match: { pathPrefix: '/' }, split: weights });
  return next;
}
