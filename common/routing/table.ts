/**
 * A service's route table compiled from its rules: first match wins. A service with no rules
 * gets one catch-all rule over all its endpoints.
 */
import type { RouteRule } from '../config/schema.js';
import { routeRule, ruleName } from '../config/schema.js';
import { compileMatch, type CompiledMatch, type HeaderMap } from './match.js';
import { compileSplit, type WeightedSplit } from './split.js';

export interface CompiledRule {
  readonly index: number;
  /** The rule's `name`, else `rule-<index>`; `default` for the implicit catch-all. */
  readonly name: string;
  readonly rule: RouteRule;
  readonly match: CompiledMatch;
  readonly split: WeightedSplit;
}

export interface RouteTable {
  readonly rules: readonly CompiledRule[];
  /** True when some rule reads headers. */
  readonly usesHeaders: boolean;
}

export const CATCH_ALL_RULE: RouteRule = routeRule.parse({ name: 'default' });

export function compileRoutes(rules: readonly RouteRule[] | undefined): RouteTable {
  const list = rules === undefined || rules.length === 0 ? [CATCH_ALL_RULE] : rules;
  const compiled = list.map((rule, index) => ({
    index,
    name: ruleName(rule, index),
    rule,
    match: compileMatch(rule.match),
    split: compileSplit(rule.split),
  }));
  return { rules: compiled, usesHeaders: compiled.some((r) => r.match.usesHeaders) };
}

/**
 * The index of the first rule matching, or -1. `method` is the request's as sent: methods are
 * case-sensitive. `authority` is the one the request is forwarded with, which `host` checks read.
 */
export function matchRoute(table: RouteTable, method: string, path: string, headers: HeaderMap | undefined, authority: string | undefined): number {
  const rules = table.rules;
  for (let i = 0; i < rules.length; i++) if (rules[i]!.match.matches(method, path, headers, authority)) return i;
  return -1;
}
