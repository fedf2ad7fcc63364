/**
 * What the admin API's answers look like, checked before they are printed: a `--control-plane`
 * that points at some other JSON service must fail with a clear error (AdminClient names the
 * URL), not with whatever TypeError the printing code would hit first.
 */
import { z } from 'zod';
import { intentions, routeRule, serviceName, type IntentionsInput, type RouteRuleInput } from '../common/config/schema.js';
import type { ServiceView } from '../control-plane/admin-api/services-routes.js';
import type { ProxyView } from '../control-plane/push/proxies.js';

export interface Expected<T> {
  /** What the answer should be, for the error, e.g. "a list of services". */
  readonly what: string;
  matches(body: unknown): body is T;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isServiceView(value: unknown): value is ServiceView {
  return isObject(value) && typeof value.name === 'string' && Array.isArray(value.instances) && Array.isArray(value.subsets);
}

export const SERVICES: Expected<ServiceView[]> = {
  what: 'a list of services',
  matches: (body): body is ServiceView[] => Array.isArray(body) && body.every(isServiceView),
};

export const SERVICE: Expected<ServiceView> = { what: 'a service', matches: isServiceView };

/** Config resources come back as written, so the config schema itself tells them apart. */
function fromSchema<T>(what: string, schema: z.ZodTypeAny): Expected<T> {
  return { what, matches: (body): body is T => schema.safeParse(body).success };
}

export const ROUTES: Expected<RouteRuleInput[]> = fromSchema('route rules', z.array(routeRule));

export const ROUTES_BY_SERVICE: Expected<Record<string, RouteRuleInput[]>> = fromSchema('route rules by service', z.record(serviceName, z.array(routeRule)));

export const INTENTIONS: Expected<IntentionsInput> = fromSchema('intentions', intentions);

export const PROXIES: Expected<{ snapshotVersion: string; proxies: ProxyView[] }> = {
  what: 'the connected proxies',
  matches: (body): body is { snapshotVersion: string; proxies: ProxyView[] } => isObject(body) && Array.isArray(body.proxies),
};

/** The answer of `POST /api/v1/apply`. */
export interface AppliedAnswer {
  applied: { kind: 'policy' | 'routes' | 'intentions'; name?: string; key: string; revision: number }[];
  snapshotVersion: string;
  /** false when the control plane stored the file but could not publish it (newer control planes). */
  published?: boolean;
  warning?: string;
  /** Canary rollouts a forced apply aborted before writing (`?force=true`). */
  abortedCanaries?: string[];
}

export const APPLIED: Expected<AppliedAnswer> = {
  what: 'the applied documents',
  matches: (body): body is AppliedAnswer =>
    isObject(body) &&
    typeof body.snapshotVersion === 'string' &&
    Array.isArray(body.applied) &&
    body.applied.every((d) => isObject(d) && typeof d.kind === 'string' && (d.name === undefined || typeof d.name === 'string')),
};
