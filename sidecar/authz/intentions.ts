/**
 * Intentions (SPEC §4): may service `source` call service `destination`? Rules are read in
 * order and the first whose source and destination match (`*` matches any service) decides;
 * otherwise the default action does. The source is always the SPIFFE identity of the peer
 * certificate, never a header. A snapshot without an `intentions` section allows everything
 * (see README, "Configuration").
 *
 * A rule with `permissions` (L7, Consul's) decides each request of its pair by the first
 * permission whose match (a route match, compiled by common/routing) it meets, and a request
 * none meets by the default action: later rules are not read. Which rule governs a pair is
 * memoised, so a pair whose rule is L4 (or that no rule matches) costs one map lookup per
 * request; only a pair governed by permissions matches the request against them.
 */
import type { IntentionPermission, IntentionRule, Intentions } from '../../common/config/schema.js';
import { compileMatch, type CompiledMatch, type HeaderMap } from '../../common/routing/match.js';

export interface IntentionDecision {
  readonly allowed: boolean;
  /** Index of the deciding rule; undefined when no rule matched the pair (the default action, or no intentions, decided). */
  readonly rule?: number;
  /** Index of the rule's permission that decided; undefined for an L4 rule, or when none matched (the default action decided). */
  readonly permission?: number;
  /** True when the rule has permissions and none matched the request: the default action decided. */
  readonly unmatched?: true;
}

/** A pair governed by a rule with permissions: each request is decided by them. */
export interface RulePermissions {
  readonly rule: number;
  /** False when no permission reads request headers (but for `host`, which reads the authority): no header map is needed. */
  readonly usesHeaders: boolean;
  /** `path` as the sidecar normalised it, without its query; `authority` the request's Host or :authority. */
  decide(method: string, path: string, headers: HeaderMap | undefined, authority: string | undefined): IntentionDecision;
}

/** What governs a pair's calls: a decision for all of them, or permissions deciding each. */
export type PairVerdict = IntentionDecision | RulePermissions;

/** A compiled, immutable evaluator; a new one is built for every snapshot. */
export type IntentionsEvaluator = (source: string | undefined, destination: string) => PairVerdict;

export function decidesPerRequest(verdict: PairVerdict): verdict is RulePermissions {
  return 'decide' in verdict;
}

const ALLOW_ALL: IntentionDecision = { allowed: true };
/** Decisions are memoised per (source, destination); the map is dropped if it ever grows this large. */
const MEMO_LIMIT = 10_000;

/** A rule's permissions, compiled once per snapshot; each outcome made once, so a request allocates nothing. */
function compilePermissions(permissionList: readonly IntentionPermission[], index: number, fallback: IntentionDecision): RulePermissions {
  const matches = permissionMatches(permissionList);
  const permissions = permissionList.map((p, i) => ({ match: matches[i]!, decision: { allowed: p.action === 'allow', rule: index, permission: i } }));
  const unmatched: IntentionDecision = { allowed: fallback.allowed, rule: index, unmatched: true };
  return {
    rule: index,
    usesHeaders: permissions.some((p) => p.match.usesHeaders),
    decide(method, path, headers, authority) {
      for (let i = 0; i < permissions.length; i++) {
        const p = permissions[i]!;
        if (p.match.matches(method, path, headers, authority)) return p.decision;
      }
      return unmatched;
    },
  };
}

/** The permissions' compiled matches, for explaining why a request meets none of them. */
export function permissionMatches(permissions: readonly IntentionPermission[]): CompiledMatch[] {
  return permissions.map((p) => compileMatch(p.http));
}

export function compileIntentions(intentions: Intentions | undefined): IntentionsEvaluator {
  if (!intentions) return () => ALLOW_ALL;
  const fallback: IntentionDecision = { allowed: intentions.defaultAction === 'allow' };
  const verdictOf = (r: IntentionRule, index: number): PairVerdict => (r.permissions === undefined ? { allowed: r.action === 'allow', rule: index } : compilePermissions(r.permissions, index, fallback));
  const rules = intentions.rules.map((r, index) => ({ source: r.source, destination: r.destination, verdict: verdictOf(r, index) }));
  const memo = new Map<string, PairVerdict>();

  const decide = (source: string, destination: string): PairVerdict => {
    for (const r of rules) {
      if ((r.source === '*' || r.source === source) && (r.destination === '*' || r.destination === destination)) return r.verdict;
    }
    return fallback;
  };

  return (source, destination) => {
    // A caller without an identity matches no rule, not even `*`: only the default action applies.
    if (source === undefined) return fallback;
    const key = `${source}\u0000${destination}`;
    let verdict = memo.get(key);
    if (!verdict) {
      if (memo.size >= MEMO_LIMIT) memo.clear();
      verdict = decide(source, destination);
      memo.set(key, verdict);
    }
    return verdict;
  };
}

/** The `denied` reply's detail: the caller, and the rule and permission that denied it (or that none of the rule's matched). */
export function deniedDetail(source: string | undefined, destination: string, decision: IntentionDecision): string {
  const who = `${source ?? 'a caller without identity'} may not call ${destination}`;
  if (decision.permission !== undefined) return `${who}: intention rule ${decision.rule} permission ${decision.permission} denies the request`;
  if (decision.unmatched) return `${who}: no permission of intention rule ${decision.rule} matches the request, and the default action denies it`;
  return who;
}
