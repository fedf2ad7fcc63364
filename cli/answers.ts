/**
 * What the admin API's answers look like, checked before they are printed: a `--control-plane`
 * that points at some other JSON service must fail with a clear error (AdminClient names the
 * URL), not with whatever TypeError the printing code would hit first.
 */
import { z } from 'zod';
import type { ExplainAnswer, PolicyInForce } from '../control-plane/admin-api/explain-routes.js';
import type { ServiceView } from '../control-plane/admin-api/services-routes.js';
import type { CanaryState } from '../control-plane/canary/controller.js';
import type { StatsView } from '../control-plane/observability/stats.js';
import type { ProxyView } from '../control-plane/push/proxies.js';
import type { IssuedToken } from '../control-plane/tokens.js';

export interface Expected<T> {
  /** What the answer should be, for the error, e.g. "a list of services". */
  readonly what: string;
  /** `status` is the answer's (2xx) status: an answer with no body is told apart by it. */
  matches(body: unknown, status: number): body is T;
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

/**
 * An answer checked against a zod schema of the fields the CLI reads, lenient about the rest
 * (no `.strict()`, no refinements): a control plane of another version, that adds a field or
 * still holds a value this version's config schema would refuse, is still understood. The
 * body is passed on as it came, unknown fields included, so a read-modify-write (`skein
 * intention`) sends them back.
 */
function fromSchema<T>(what: string, schema: z.ZodTypeAny): Expected<T> {
  return { what, matches: (body): body is T => schema.safeParse(body).success };
}

/** A route rule, as `skein get routes` prints it (the config schema is `routeRule`). */
const routeRuleAnswer = z.object({
  name: z.string().optional(),
  match: z
    .object({
      method: z.union([z.string(), z.array(z.string())]).optional(),
      path: z.string().optional(),
      pathPrefix: z.string().optional(),
      pathRegex: z.string().optional(),
      headers: z.record(z.string(), z.unknown()).optional(),
    })
    .optional(),
  split: z.record(z.string(), z.number()).optional(),
  timeout: z.union([z.string(), z.number()]).optional(),
  fault: z.unknown().optional(),
  mirror: z.object({ subset: z.string() }).optional(),
});

export type RouteRuleAnswer = z.infer<typeof routeRuleAnswer>;

export const ROUTES: Expected<RouteRuleAnswer[]> = fromSchema('route rules', z.array(routeRuleAnswer));

export const ROUTES_BY_SERVICE: Expected<Record<string, RouteRuleAnswer[]>> = fromSchema('route rules by service', z.record(z.string(), z.array(routeRuleAnswer)));

/**
 * The intentions, as `skein get intentions` prints them and `skein intention` edits them (the
 * config schema is `intentions`). Both fields may be missing (they are stored as written, and
 * `{}` is the default deny with no rules), but an object with other fields and neither of them
 * is some other service's JSON.
 */
const intentionPermissionAnswer = z.object({ action: z.string(), http: z.record(z.string(), z.unknown()) }).passthrough();

const intentionsAnswer = z
  .object({
    defaultAction: z.string().optional(),
    // Passed through whole: `skein intention` writes back the rules it did not change, permissions and all.
    rules: z.array(z.object({ source: z.string(), destination: z.string(), action: z.string().optional(), permissions: z.array(intentionPermissionAnswer).optional() }).passthrough()).optional(),
  })
  .passthrough()
  .refine((value) => value.defaultAction !== undefined || value.rules !== undefined || Object.keys(value).length === 0);

export type IntentionsAnswer = z.infer<typeof intentionsAnswer>;

export const INTENTIONS: Expected<IntentionsAnswer> = fromSchema('intentions', intentionsAnswer);

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

/** The answer of `POST /api/v1/apply/check` that passed (a refusal is a 422). */
export const CHECKED: Expected<{ ok: true }> = fromSchema('the verdict of a check', z.object({ ok: z.literal(true) }));

/** A write answered with no body (`204 No Content`); a 200 from anything else is not it. */
export const NO_CONTENT: Expected<undefined> = {
  what: 'an empty answer (204)',
  matches: (body, status): body is undefined => status === 204 && body === undefined,
};

export const ISSUED_TOKEN: Expected<IssuedToken> = fromSchema('a bootstrap token', z.object({ token: z.string().min(1), service: z.string(), expiresAt: z.string() }));

/** The answer of `GET /api/v1/ca` and `POST /api/v1/ca/rotate`. */
export interface CaView {
  trustDomain: string;
  /** Absent from control planes older than 2026-12-07. */
  trustDomainAliases?: string[];
  roots: { subject: string; fingerprint: string; notAfter: string; signing: boolean }[];
  /** The lifetime of the leaves it issues (`--cert-ttl`); read leniently, as nothing before `skein check` read it. */
  leafLifetimeMs?: number;
  rotation: { phase: string; rotating: boolean; waitingFor: string[]; settlingUntil?: string | null; startedAt: string | null; finishedAt: string | null };
}

export const CA: Expected<CaView> = fromSchema(
  "the certificate authority's state",
  z.object({
    trustDomain: z.string(),
    trustDomainAliases: z.array(z.string()).optional(),
    roots: z.array(z.object({ fingerprint: z.string(), notAfter: z.string(), signing: z.boolean() })),
    rotation: z.object({ phase: z.string(), rotating: z.boolean(), waitingFor: z.array(z.string()), settlingUntil: z.string().nullable().optional() }),
  }),
);

const numberOrNull = z.number().nullable();

/** The title of the control plane's OpenAPI description (control-plane/admin-api/openapi.ts). */
const ADMIN_API_TITLE = 'Skein control plane admin API';

/** The answer of `GET /api/v1/openapi.json`: a Skein control plane's, naming its version. */
export const OPENAPI: Expected<{ info: { title: string; version: string } }> = fromSchema(
  "a Skein control plane's API description",
  z.object({ openapi: z.string(), info: z.object({ title: z.literal(ADMIN_API_TITLE), version: z.string() }) }),
);

export const CANARY: Expected<CanaryState> = fromSchema(
  'a canary rollout',
  z.object({
    service: z.string(),
    spec: z.object({ from: z.string(), to: z.string(), steps: z.array(z.number()), interval: z.number() }),
    status: z.enum(['running', 'succeeded', 'rolled-back', 'aborted']),
    step: z.number(),
    weight: z.number(),
    reason: z.string().optional(),
    paused: z.object({ at: z.string(), reason: z.string().optional() }).optional(),
    analyses: z.array(
      z.object({ step: z.number(), weight: z.number(), measured: z.object({ requests: z.number(), successRate: numberOrNull, p99Ms: numberOrNull }), decision: z.string(), reason: z.string().optional() }),
    ),
  }),
);

/**
 * What a CLI says of what a control plane older than it does not report (kubectl and linkerd
 * work one version apart): showing it as none would be a false statement.
 */
export function notReported(what: string): string {
  return `${what}: not reported by this control plane (older than this CLI)`;
}

/** The answer of `GET /api/v1/stats`. */
export type StatsAnswer = Omit<StatsView, 'ejections'> & {
  /** Absent from control planes older than 2026-12-07 (41c5dc3). */
  ejections?: StatsView['ejections'];
};

export const STATS: Expected<StatsAnswer> = fromSchema(
  'traffic statistics',
  z.object({
    bucketBoundsMs: z.array(z.number()),
    services: z.array(z.object({ service: z.string(), subsets: z.array(z.object({ subset: z.string() })) })),
    edges: z.array(z.object({ source: z.string(), destination: z.string(), subsets: z.array(z.object({ subset: z.string() })) })),
    breakers: z.array(z.object({ service: z.string(), state: z.string() })),
    ejections: z.array(z.object({ service: z.string(), destination: z.string(), endpoint: z.string(), until: z.string() })).optional(),
  }),
);

/**
 * The answer of `GET /api/v1/explain`. Absent from control planes older than 2026-12-07, even
 * where the rule matched: `openBreakers` and `intention` (ef618f3), `policy.retriedAfterSent`
 * (7d03d37), `ejectedEndpoints` (41c5dc3).
 */
export type ExplainAnswerSeen = Omit<ExplainAnswer, 'policy'> & {
  policy?: Omit<PolicyInForce, 'retriedAfterSent'> & Partial<Pick<PolicyInForce, 'retriedAfterSent'>>;
};

export const EXPLANATION: Expected<ExplainAnswerSeen> = fromSchema(
  'an explanation of a request',
  z.object({
    service: z.string(),
    snapshotVersion: z.string(),
    request: z.object({ method: z.string(), path: z.string() }),
    path: z.string(),
    known: z.boolean(),
    skipped: z.array(z.object({ index: z.number(), name: z.string(), reasons: z.array(z.string()) })),
    split: z.array(z.object({ subset: z.string(), weight: z.number() })),
  }),
);

