/**
 * Which endpoints a subset names: a declared subset selects endpoints carrying all its labels;
 * an undeclared one selects endpoints whose `version` label equals its name (SPEC §4), so
 * `skein split catalog v1=90 v2=10` needs no setup.
 */
import type { Endpoint, ServicePolicy } from '../config/schema.js';
import { ownEntry } from '../config/own.js';
import { ALL_ENDPOINTS } from './split.js';

export function subsetSelector(policy: Pick<ServicePolicy, 'subsets'>, subset: string): Readonly<Record<string, string>> {
  if (subset === ALL_ENDPOINTS) return {};
  return ownEntry(policy.subsets, subset) ?? { version: subset };
}

export function selectEndpoints<E extends Pick<Endpoint, 'labels'>>(selector: Readonly<Record<string, string>>, endpoints: readonly E[]): E[] {
  const keys = Object.keys(selector);
  return endpoints.filter((e) => keys.every((k) => e.labels[k] === selector[k]));
}
