/**
 * How intention rules (SPEC §4) rank against each other. The first rule whose source and
 * destination match a call decides it (`*` matches any service), so a rule never decides when
 * an earlier one matches every call it would: one naming the same source or `*`, and the
 * same destination or `*`. No set of earlier rules can hide a rule without one of them hiding
 * it alone: a rule matches one call, or one for each of the unbounded service names its `*`
 * stands for, and only a `*` in the same place matches all of those.
 *
 * A rule with HTTP permissions is no exception: it governs every call of its pair, deciding
 * those no permission matches by the default action rather than passing them on (Consul's L7
 * intentions), so it hides later rules as an L4 rule does, and is hidden as one is.
 *
 * Precedence: exact pairs, then rules with one `*`, then `*` -> `*` (as Consul ranks its
 * intentions). In that order a rule can be hidden only by an earlier one of the same pair: a
 * rule that matches every call of another is at least as general.
 */

/** The part of an intention rule that says which calls it matches. */
export interface IntentionPair {
  readonly source: string;
  readonly destination: string;
}

/** A rule that never decides, and the first earlier rule that matches every call it would. */
export interface HiddenRule {
  readonly index: number;
  readonly hiddenBy: number;
}

const ANY = '*';

function pairKey(source: string, destination: string): string {
  return `${source}\u0000${destination}`;
}

/** Every rule that never decides because of an earlier one, in order. */
export function hiddenRules(rules: readonly IntentionPair[]): HiddenRule[] {
  // The first rule of each pair: a rule is hidden by the first of its own pair, `source -> *`,
  // `* -> destination` or `* -> *` that came before it, whichever is earliest.
  const first = new Map<string, number>();
  const hidden: HiddenRule[] = [];
  rules.forEach(({ source, destination }, index) => {
    const earlier = [pairKey(source, destination), pairKey(source, ANY), pairKey(ANY, destination), pairKey(ANY, ANY)]
      .map((key) => first.get(key))
      .filter((i): i is number => i !== undefined);
    if (earlier.length > 0) hidden.push({ index, hiddenBy: Math.min(...earlier) });
    const own = pairKey(source, destination);
    if (!first.has(own)) first.set(own, index);
  });
  return hidden;
}

/** 0 for an exact pair, 1 for a rule with one `*`, 2 for `*` -> `*`. */
export function specificity(rule: IntentionPair): number {
  return (rule.source === ANY ? 1 : 0) + (rule.destination === ANY ? 1 : 0);
}

/** The rules in precedence order (most specific first); rules alike in that keep their order. */
export function inPrecedenceOrder<T extends IntentionPair>(rules: readonly T[]): T[] {
  // Array.prototype.sort is stable.
  return [...rules].sort((a, b) => specificity(a) - specificity(b));
}
