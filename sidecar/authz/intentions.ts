/**
 * Intentions (SPEC §4): may service `source` call service `destination`? Rules are read in
 * order and the first whose source and destination match (`*` matches any service) decides;
 * otherwise the default action does. The source is always the SPIFFE identity of the peer
 * certificate, never a header. A snapshot without an `intentions` section allows everything
 * (see README, "Configuration").
 */
import type { Intentions } from '../../common/config/schema.js';

export interface IntentionDecision {
  readonly allowed: boolean;
  /** Index of the deciding rule; undefined when the default action (or no intentions) decided. */
  readonly rule?: number;
}

/** A compiled, immutable evaluator; a new one is built for every snapshot. */
export type IntentionsEvaluator = (source: string | undefined, destination: string) => IntentionDecision;

const ALLOW_ALL: IntentionDecision = { allowed: true };
/** Decisions are memoised per (source, destination); the map is dropped if it ever grows this large. */
const MEMO_LIMIT = 10_000;

export function compileIntentions(intentions: Intentions | undefined): IntentionsEvaluator {
  if (!intentions) return () => ALLOW_ALL;
  const rules = intentions.rules.map((r, index) => ({ ...r, index }));
  const fallback: IntentionDecision = { allowed: intentions.defaultAction === 'allow' };
  const memo = new Map<string, IntentionDecision>();

  const decide = (source: string, destination: string): IntentionDecision => {
    for (const r of rules) {
      if ((r.source === '*' || r.source === source) && (r.destination === '*' || r.destination === destination)) {
        return { allowed: r.action === 'allow', rule: r.index };
      }
    }
    return fallback;
  };

  return (source, destination) => {
    // A caller without an identity matches no rule, not even `*`: only the default action applies.
    if (source === undefined) return fallback;
    const key = `${source}\u0000${destination}`;
    let decision = memo.get(key);
    if (!decision) {
      if (memo.size >= MEMO_LIMIT) memo.clear();
      decision = decide(source, destination);
      memo.set(key, decision);
    }
    return decision;
  };
}
