/**
 * The config resources the admin API reads and writes, each validated with the shared
 * zod schema (common/config/schema.ts) and kept in the store in its SPEC §4 wire form
 * (durations as written, e.g. "3s"), so what an operator PUTs is what they GET back.
 */
import { z } from 'zod';
import { intentions, routeRules, serviceName, servicePolicy, split } from '../../common/config/schema.js';

/** A service's policy: everything of SPEC §4 `services.X` except endpoints, which come from discovery. */
export const policyBody = servicePolicy.omit({ endpoints: true });
export const routesBody = routeRules;
export const splitBody = split;
export const intentionsBody = intentions;

/** The documents of an apply file: `services.X` is X's policy, `routes.X` its rules, `intentions` the intentions. */
export const applyDocuments = z
  .object({
    services: z.record(serviceName, policyBody).optional(),
    routes: z.record(serviceName, routesBody).optional(),
    intentions: intentionsBody.optional(),
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
