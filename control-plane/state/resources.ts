/**
 * The config resources the admin API reads and writes, each validated with the shared
 * zod schema (common/config/schema.ts) and kept in the store in its SPEC §4 wire form
 * (durations as written, e.g. "3s"), so what an operator PUTs is what they GET back.
 */
import { z } from 'zod';
import { authoredIntentions, discoveredServicePolicy, intentions, routeRules, serviceName, split } from '../../common/config/schema.js';
import type { StoreOp } from '../store/store.js';

/** A service's policy: everything of SPEC §4 `services.X` except endpoints, which come from discovery. */
export const policyBody = discoveredServicePolicy;
export const routesBody = routeRules;
export const splitBody = split;
/** Intentions as stored, for reading the store: an older version may have written a rule that never decides. */
export const intentionsBody = intentions;
/** Intentions as written (PUT, apply): a rule that never decides is refused. */
export const newIntentionsBody = authoredIntentions;

/** The documents of an apply file: `services.X` is X's policy, `routes.X` its rules, `intentions` the intentions. */
export const applyDocuments = z
  .object({
    services: z.record(serviceName, policyBody).optional(),
    routes: z.record(serviceName, routesBody).optional(),
    intentions: newIntentionsBody.optional(),
  })
  .strict();

export type PolicyInput = z.input<typeof policyBody>;
export type RoutesInput = z.input<typeof routesBody>;
export type IntentionsBodyInput = z.input<typeof intentionsBody>;
export type ApplyDocumentsInput = z.input<typeof applyDocuments>;

export const keys = {
  policy: (service: string) => `policies/${service}`,
  routes: (service: string) => `routes/${service}`,
  intentions: 'intentions',
} as const;

/** Everything of the mesh config the store holds, as written (wire form). */
export interface StoredConfig {
  policies: Record<string, PolicyInput>;
  routes: Record<string, RoutesInput>;
  intentions?: IntentionsBodyInput;
}

/** `config` as a store transaction of `ops` would leave it (checks change nothing; keys of other kinds are not config). */
export function withOps(config: StoredConfig, ops: readonly StoreOp[]): StoredConfig {
  const next: StoredConfig = { policies: { ...config.policies }, routes: { ...config.routes }, intentions: config.intentions };
  for (const op of ops) {
    if (op.op === 'check') continue;
    const value = op.op === 'put' ? op.value : undefined;
    if (op.key === keys.intentions) next.intentions = value as IntentionsBodyInput | undefined;
    else if (op.key.startsWith('policies/')) setEntry(next.policies, op.key.slice('policies/'.length), value as PolicyInput | undefined);
    else if (op.key.startsWith('routes/')) setEntry(next.routes, op.key.slice('routes/'.length), value as RoutesInput | undefined);
  }
  return next;
}

function setEntry<T>(section: Record<string, T>, name: string, value: T | undefined): void {
  if (value === undefined) delete section[name];
  else section[name] = value;
}
