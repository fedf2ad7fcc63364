/**
 * The mesh config model of SPEC §4: the snapshot the control plane pushes and the file a
 * static sidecar reads. One schema serves both, so a snapshot is validated once where it
 * enters a process and everything downstream reads typed, defaulted values.
 *
 * `SnapshotInput` is the wire/file form (durations as strings); `Snapshot` is the parsed
 * form (durations in milliseconds, every default filled in).
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { normaliseTarget } from '../http/request-target.js';
import { re2OnlySyntax } from '../routing/re2-syntax.js';
import { matchesEveryRequest } from '../routing/match.js';
import { ALL_ENDPOINTS } from '../routing/split.js';
import { backtrackRisk } from '../routing/regex-safety.js';
import { exactDuration, formatDuration, wholeMs } from './duration.js';
import { hiddenRules } from './intention-precedence.js';
import { ownEntry } from './own.js';

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export const serviceName = z
  .string()
  .regex(NAME, 'must be a DNS label: lowercase letters, digits and "-", at most 63 characters');

export const subsetName = z
  .string()
  .regex(/^[A-Za-z0-9]([A-Za-z0-9_.-]{0,62})$/, 'must be letters, digits, "-", "_" or "."');

/**
 * A sidecar's instance id, as `--instance-id` takes it, Consul registers it (the service ID)
 * and a Hello announces it. It goes into URL paths and queries (`/v1/agent/service/<id>`, the
 * check's `/ready?instance=<id>`) as it is, so it holds nothing that would need escaping
 * there: with a `/` Consul answers another path (`../x` gets 301s), and an empty one is no
 * service ID at all. Consul takes these characters in a service ID and DNS names alike.
 */
export const instanceId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,252}$/, 'must be 1 to 253 letters, digits, "-", "_", "." or ":", starting with a letter or digit');

/**
 * The path the sidecar asks its app for readiness (`--app-health-path`): without the leading
 * "/" no request could be made, and whitespace or "#" cannot be sent in one.
 */
export const appHealthPath = z
  .string()
  .refine((p) => p.startsWith('/') && !/[\s#]/.test(p), 'expected a path starting with "/", e.g. /health');

/**
 * A duration string ("250ms", "3s", "1m30s") parsed to milliseconds. A value that is not one
 * is a fatal issue: checks chained after it (`.refine((ms) => ms >= 500)`) never see z.NEVER,
 * which would add a second, misleading problem for the same field.
 */
export const duration = z.union([z.string(), z.number()]).describe('a duration: "250ms", "3s", "1m30s", or a number of milliseconds; other than 0, at least 1ms').transform((value, ctx) => {
  // A bare number is milliseconds (the form snapshots carry inside the mesh).
  const exact = typeof value === 'number' ? (Number.isFinite(value) && value >= 0 ? value : undefined) : exactDuration(value);
  const ms = exact === undefined ? undefined : wholeMs(exact);
  if (ms !== undefined) return ms;
  const message = typeof value === 'number' && exact === undefined
    ? badMilliseconds(value)
    : exact === undefined
      ? `invalid duration ${JSON.stringify(value)} (use e.g. "250ms", "3s", "1m", or a number of milliseconds)`
      : `duration ${JSON.stringify(value)} is under 1ms: write 0 to turn it off, or at least 1ms`;
  ctx.addIssue({ code: z.ZodIssueCode.custom, message, fatal: true });
  return z.NEVER;
});

/**
 * Why a number is no duration. Printed as JSON it would read `null`: JSON.parse takes `1e400` as
 * Infinity, YAML `.inf` and `.nan` as Infinity and NaN.
 */
function badMilliseconds(value: number): string {
  if (Number.isNaN(value)) return 'invalid duration: not a number (NaN); give a number of milliseconds or a string such as "3s"';
  if (value < 0) return `invalid duration ${value}: a number of milliseconds cannot be negative`;
  return 'invalid duration: a number too large to be read (JSON takes it as infinity); give a number of milliseconds or a string such as "24h"';
}

/**
 * The longest policy duration (timeouts, backoff, breaker and ejection times, fault delays,
 * canary intervals): 24 h. Node's timers hold at most 2^31-1 ms (about 24.8 days) and fire a
 * longer one after 1 ms, so `timeout: 1000h` would time every request out at once.
 */
export const MAX_POLICY_DURATION_MS = 24 * 3_600_000;

/** A duration of a policy: at most 24 h, a fatal issue naming the field otherwise. */
export const policyDuration = duration.refine((ms) => ms <= MAX_POLICY_DURATION_MS, (ms) => ({ message: `must be at most 24h, not ${formatDuration(ms)}` }));

const percent = z.number().min(0).max(100);

/**
 * A number with no upper bound: JSON.parse reads `1e400` as Infinity, which JSON (the store, the
 * snapshot) writes back as null, so taking it would store a value that a restart refuses.
 */
const finite = z.number().finite('must be a finite number (JSON reads one as large as 1e400 as infinity)');
const labels = z.record(z.string(), z.string());

export const retryOn = z.enum(['connect-failure', 'reset', 'gateway-error', '5xx', 'unavailable', 'deadline-exceeded']);

/**
 * A status from 400 to 599 that is a retry condition of its own (Envoy's `retriable_status_codes`,
 * Consul's `RetryOnStatusCodes`, Linkerd's `retry.linkerd.io/http: 5xx,429`): `on: [503]` retries
 * a 503 and not a 500, `on: [429]` a rate limit's answer. A 2xx or 3xx is no failure to retry.
 */
const retryStatus = z.number().superRefine((status, ctx) => {
  if (!Number.isInteger(status) || status < 400 || status > 599) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${status} is not an error status: give a status from 400 to 599` });
});

const retryCondition = z.union([retryOn, retryStatus], {
  errorMap: (_issue, ctx) => ({
    message: `${typeof ctx.data === 'string' ? JSON.stringify(ctx.data) : String(ctx.data)} is no retry condition: give one of ${retryOn.options.join(', ')}, or a status from 400 to 599`,
  }),
});

/** The named conditions that already retry a status: a number they cover would change nothing. */
function coveredBy(status: number): readonly z.output<typeof retryOn>[] {
  return status >= 502 && status <= 504 ? ['5xx', 'gateway-error'] : status >= 500 ? ['5xx'] : [];
}

/** A number written twice, or one a named condition retries already, is refused: it reads as though it changed something. */
const retryConditions = z.array(retryCondition).superRefine((on, ctx) => {
  on.forEach((condition, index) => {
    if (typeof condition !== 'number') return;
    const twice = on.indexOf(condition);
    const by = coveredBy(condition).find((name) => on.includes(name));
    const problem = twice < index ? `${condition} is listed already (on[${twice}])` : by !== undefined ? `${condition} is retried already by ${by} (on[${on.indexOf(by)}]): leave it out` : undefined;
    if (problem !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [index], message: problem });
  });
});

const DEFAULT_BACKOFF_MAX_MS = 250;

/** How a request is tried again: a service's policy or a rule's override of it. */
const retryTries = {
  attempts: z.number().int().min(0).max(10).default(2),
  perTryTimeout: policyDuration.default('1s'),
  on: retryConditions.default(['connect-failure', 'reset', 'gateway-error']),
  backoff: z
    .object({ base: policyDuration.default('25ms'), max: policyDuration.optional() })
    .strict()
    // Without a max, a base past the default max waits base each time rather than being cut.
    .transform((b) => ({ base: b.base, max: b.max ?? Math.max(DEFAULT_BACKOFF_MAX_MS, b.base) }))
    .refine((b) => b.base <= b.max, (b) => ({ message: `base (${formatDuration(b.base)}) must not be longer than max (${formatDuration(b.max)})` }))
    .default({}),
};

export const retryPolicy = z
  .object({
    ...retryTries,
    budget: z
      .object({ ratio: z.number().min(0).max(1).default(0.2), minPerSecond: finite.min(0).default(10) })
      .strict()
      .default({}),
  })
  .strict();

/**
 * A rule's `retries`: the tries of its requests. The budget is the destination's, one for all its
 * rules (Linkerd's is per service too), so a rule that names one is refused rather than ignored.
 */
export const ruleRetryPolicy = z
  .object({
    ...retryTries,
    budget: z
      .unknown()
      .superRefine((_, ctx) => ctx.addIssue({ code: z.ZodIssueCode.custom, message: "the retry budget is the destination's: set it in the service's retries, not a rule's" }))
      .optional(),
  })
  .strict()
  .transform(({ budget: _, ...tries }) => tries);

export const circuitBreakerPolicy = z
  .object({
    errorThresholdPercentage: percent.default(50),
    volumeThreshold: z.number().int().min(0).default(20),
    // Opossum ticks a timer per tenth of the window: a 0s window ran one every millisecond
    // for the process's life, and judged requests it had forgotten by then.
    rollingWindow: policyDuration.refine((ms) => ms >= 1000, (ms) => ({ message: `must be at least 1s, not ${formatDuration(ms)}: the breaker judges the requests of this window` })).default('10s'),
    resetTimeout: policyDuration.default('5s'),
    maxConcurrent: z.number().int().min(1).default(1024),
  })
  .strict();

export const outlierPolicy = z
  .object({
    consecutiveErrors: z.number().int().min(1).default(5),
    baseEjectionTime: policyDuration.default('30s'),
    maxEjectionPercent: percent.default(50),
  })
  .strict();

const HOST_NAME = /^(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** An address to connect to: an IP address or a DNS name, without a scheme, brackets or port (those fail only at the first request). */
export const endpointAddress = z.string().refine((a) => isIP(a) !== 0 || HOST_NAME.test(a), (a) => ({
  message: `must be an IP address or a host name, not ${JSON.stringify(a)}${/[:/\[]/.test(a) && isIP(a) === 0 ? ' (no scheme, brackets or port: the port goes in port)' : ''}`,
}));

export const endpoint = z
  .object({
    address: endpointAddress,
    port: z.number().int().min(1).max(65535),
    labels: labels.default({}),
  })
  .strict();

/** RFC 9110 §5.6.2: methods and header field names are tokens; anything else could never match a request. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
export const methodName = z.string().regex(TOKEN, 'must be an HTTP method name (a token: letters, digits and !#$%&\'*+-.^_`|~)');
const headerName = z.string().regex(TOKEN, 'must be a header name (a token: letters, digits and !#$%&\'*+-.^_`|~)');
/** RFC 6265 §4.1.1: a cookie's name is a token. */
const cookieName = z.string().regex(TOKEN, 'must be a cookie name (a token: letters, digits and !#$%&\'*+-.^_`|~)');

/**
 * What `lb: ring-hash` hashes to pick an endpoint: one request header, cookie or query
 * parameter (Istio's `consistentHash`, Consul's `HashPolicies`), so requests that carry the
 * same value go to the same endpoint while it stays in the set.
 */
export const hashOn = z
  .object({
    header: headerName.optional(),
    cookie: cookieName.optional(),
    query: z.string().min(1).optional(),
  })
  .strict()
  .refine((h) => Object.values(h).filter((v) => v !== undefined).length === 1, 'give exactly one of header, cookie, query');

const stringMatch = z.union([
  z.string(),
  z
    .object({
      exact: z.string().optional(),
      prefix: z.string().optional(),
      regex: z.string().optional(),
      present: z.boolean().optional(),
    })
    .strict()
    .refine((m) => Object.values(m).filter((v) => v !== undefined).length === 1, 'give exactly one of exact, prefix, regex, present'),
]);

/** A request path, or a prefix of one: every path a sidecar routes starts with "/". */
export const requestPath = z.string().startsWith('/', 'must start with "/"');

/** Why a route regex is refused (not a regex, RE2 syntax JavaScript reads otherwise, or one that may backtrack catastrophically), or undefined. */
function regexProblem(source: string): string | undefined {
  try {
    new RegExp(source);
  } catch (err) {
    return `invalid regex: ${(err as Error).message}`;
  }
  const re2 = re2OnlySyntax(source);
  if (re2 !== undefined) return `never matches what it means: ${re2}`;
  const risk = backtrackRisk(source);
  if (risk === undefined) return undefined;
  const rewrite =
    risk.kind === 'adjacent repeats'
      ? 'Rewrite it so no two unbounded repeats that can match the same characters follow each other, e.g. "^/a*b$" for "^/a*a*b$"'
      : 'Rewrite it so no repeated group holds a repeat or alternatives that can start alike, e.g. "/api/[\\w/]+" for "/api/(\\w+/?)+"';
  return `may backtrack catastrophically (${risk.kind}): ${risk.message}; a crafted request could block the sidecar for minutes. ${rewrite}`;
}

const regexString = z.string().superRefine((source, ctx) => {
  const problem = regexProblem(source);
  if (problem !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
});

/**
 * Why a `path` or `pathPrefix` can match no request, or undefined: rules match the path as
 * the sidecar normalises it (common/http/request-target.ts), without its query, so a value
 * normalisation would change (`/%7Euser` is `/~user`, `/a//b` is `/a/b`) or refuse (`%00`)
 * never matches. A prefix may end mid-segment (`/a/.` is a prefix of `/a/.well-known`) or
 * mid-escape (`/a%2` of `/a%20`), so it is judged with what could follow it.
 */
function routePathProblem(value: string, prefix: boolean): string | undefined {
  if (!value.startsWith('/')) return undefined; // said by startsWith
  if (value.includes('?')) return 'never matches: rules match the path without its query (the query is never matched)';
  const judged = prefix ? `${value.replace(/%[0-9A-Fa-f]?$/, '')}x` : value;
  let normal: string;
  try {
    normal = normaliseTarget(judged, 'GET');
  } catch (err) {
    return `never matches: a request with this path is refused (400 bad-request) before routing: ${(err as Error).message}`;
  }
  if (normal === judged) return undefined;
  const written = prefix ? normal.slice(0, -1) : normal;
  return `never matches: request paths are normalised before routing (unreserved escapes decoded, slashes merged, dot segments removed), so no request has this one: write ${JSON.stringify(written)}`;
}

const routePath = (prefix: boolean) =>
  z
    .string()
    .startsWith('/')
    .superRefine((value, ctx) => {
      const problem = routePathProblem(value, prefix);
      if (problem !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
    });

export const routeMatch = z
  .object({
    pathPrefix: routePath(true).optional(),
    path: routePath(false).optional(),
    pathRegex: regexString.optional(),
    method: z.union([methodName, z.array(methodName).min(1)]).optional(),
    headers: z.record(headerName, stringMatch).optional(),
  })
  .strict()
  .superRefine((m, ctx) => {
    const kinds = [m.pathPrefix, m.path, m.pathRegex].filter((v) => v !== undefined).length;
    if (kinds > 1) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'give at most one of pathPrefix, path, pathRegex' });
    for (const [name, match] of Object.entries(m.headers ?? {})) {
      if (typeof match === 'object' && match.regex !== undefined) {
        const problem = regexProblem(match.regex);
        if (problem !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['headers', name, 'regex'], message: problem });
      }
    }
  });

const MIN_RATE = 1 / 86_400;

/** A token bucket's size: `burst` requests at once, refilled at `requestsPerSecond`. A burst below 1 would admit nothing. */
const rateFields = {
  requestsPerSecond: finite
    .positive('must be greater than 0 (leave the limit out for none)')
    // A slower rate's Retry-After would pass 2^53 seconds (`1e-300` gave one of "1e+300", no valid header).
    .refine((rps) => rps <= 0 || rps >= MIN_RATE, (rps) => ({ message: `must be at least 1/86400 (one request a day), not ${rps}` })),
  burst: z.number().int().min(1, 'must be at least 1: a bucket smaller than one request admits none').optional(),
};

/** A burst not given is one second's worth. */
const withBurst = <T extends { requestsPerSecond: number; burst?: number | undefined }>(r: T) => ({ ...r, burst: r.burst ?? Math.max(1, Math.ceil(r.requestsPerSecond)) });

const bucketLimit = z.object(rateFields).strict().transform(withBurst);

/** Consul's per-route limits (`RateLimits.InstanceLevel.Routes`): a request the match meets takes from this bucket instead of the total's. */
const routeRateLimit = z.object({ match: routeMatch, ...rateFields }).strict().transform(withBurst);

/**
 * Local rate limiting of the requests arriving at a service (Consul's service-defaults
 * `RateLimits.InstanceLevel`, Envoy's `local_ratelimit`, Linkerd's `HTTPLocalRateLimitPolicy`):
 * each instance's inbound sidecar keeps token buckets, so N instances admit N times the rate.
 * `requestsPerSecond`/`burst` bound all callers together (Linkerd's `total`); `perSource` gives
 * every caller identity a bucket of its own (Linkerd's `identity`), and `sources` named callers
 * theirs instead (Linkerd's `overrides`); `routes` give requests of some paths a bucket of
 * their own in place of the total's, the first that matches (Consul's `Routes`). A request must
 * find a token in each that applies.
 */
export const rateLimitPolicy = z
  .object({
    requestsPerSecond: rateFields.requestsPerSecond.optional(),
    burst: rateFields.burst,
    perSource: bucketLimit.optional(),
    sources: z.record(serviceName, bucketLimit).optional(),
    routes: z.array(routeRateLimit).optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.requestsPerSecond === undefined && r.perSource === undefined && r.sources === undefined && r.routes === undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'give requestsPerSecond, perSource, sources or routes' });
    if (r.requestsPerSecond === undefined && r.burst !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['burst'], message: 'is the burst of requestsPerSecond, which is not given' });
    const total = r.requestsPerSecond;
    if (total === undefined) return;
    // As Linkerd refuses: a caller's own rate above the total's never binds.
    const above = (own: { requestsPerSecond: number }, path: (string | number)[]) => {
      if (own.requestsPerSecond > total) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [...path, 'requestsPerSecond'], message: `${own.requestsPerSecond} is above the total requestsPerSecond (${total}), so it would never apply` });
    };
    if (r.perSource !== undefined) above(r.perSource, ['perSource']);
    for (const [name, own] of Object.entries(r.sources ?? {})) above(own, ['sources', name]);
  })
  .transform(({ requestsPerSecond, burst, ...own }): RateLimitPolicy => (requestsPerSecond === undefined ? own : { ...own, ...withBurst({ requestsPerSecond, burst }) }));

export type BucketLimit = z.output<typeof bucketLimit>;
export type RouteRateLimit = z.output<typeof routeRateLimit>;
/** `burst` is set (defaulted) exactly when `requestsPerSecond` is. */
export type RateLimitPolicy = { perSource?: BucketLimit; sources?: Record<string, BucketLimit>; routes?: RouteRateLimit[] } & ({ requestsPerSecond: number; burst: number } | { requestsPerSecond?: undefined; burst?: undefined });

/** The most failover targets a subset may list (Consul sets no limit): each is tried on a request whose subset has no healthy endpoint. */
export const MAX_FAILOVER_TARGETS = 8;

/**
 * One failover target: a subset of this service, a service (over all its endpoints), or a
 * subset of another service. `service` absent is this service; `subset` absent, the target
 * service's catch-all over every endpoint (`*`, as a route without a split sends to).
 */
export const failoverTarget = z
  .object({ service: serviceName.optional(), subset: subsetName.optional() })
  .strict()
  .refine((t) => t.service !== undefined || t.subset !== undefined, 'give subset, service or both (subset alone is a subset of this service)');

/**
 * Consul's service-resolver `Failover`: per subset (`*`: any subset without an entry of its
 * own, the catch-all included), the targets its requests go to, in order, when it has no
 * healthy endpoint. Targets are not followed further (a target's own failover is not applied),
 * so lists cannot loop.
 */
export const failover = z
  .record(z.string().refine((k) => k === ALL_ENDPOINTS || subsetName.safeParse(k).success, 'must be a subset name (letters, digits, "-", "_" or "."), or "*" for every subset without a list of its own'), z.array(failoverTarget).min(1, 'list at least one target (leave the subset out for none)').max(MAX_FAILOVER_TARGETS, `lists at most ${MAX_FAILOVER_TARGETS} targets`))
  .superRefine((lists, ctx) => {
    for (const [key, targets] of Object.entries(lists)) {
      const seen = new Map<string, number>();
      targets.forEach((t, i) => {
        if (t.service !== undefined || t.subset !== undefined) {
          const id = `${t.service ?? ''}/${t.subset ?? ALL_ENDPOINTS}`;
          const first = seen.get(id);
          if (t.service === undefined && t.subset === key) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key, i, 'subset'], message: `is the subset this list is for: a subset cannot fail over to itself` });
          else if (first !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key, i], message: `is the same target as [${first}]` });
          else seen.set(id, i);
        }
      });
    }
  });

const servicePolicyFields = z
  .object({
    protocol: z.enum(['http', 'grpc']).default('http'),
    lb: z.enum(['least-request', 'round-robin', 'random', 'ring-hash']).default('least-request'),
    /** With `lb: ring-hash` (and only then): the request's value that picks the endpoint. */
    hashOn: hashOn.optional(),
    /** Whole request, retries included; 0 disables (long-lived streams). */
    timeout: policyDuration.default('3s'),
    retries: retryPolicy.default({}),
    circuitBreaker: circuitBreakerPolicy.default({}),
    outlierDetection: outlierPolicy.default({}),
    subsets: z.record(subsetName, labels).default({}),
    /**
     * Route only to instances whose every Consul check passes, as a Consul service-resolver's
     * `OnlyPassing`; by default instances in `warning` receive traffic too, as in Consul's mesh.
     */
    onlyPassing: z.boolean().default(false),
    /** Requests its instances admit, each on its own (absent: no limit). */
    rateLimit: rateLimitPolicy.optional(),
    /** Where a subset's requests go when it has no healthy endpoint (absent: answered 503 no-healthy-endpoints). */
    failover: failover.optional(),
    /** Static mode only; otherwise endpoints come from discovery. */
    endpoints: z.array(endpoint).optional(),
  })
  .strict();

/** `hashOn` is what `ring-hash` reads, and read by nothing else: one without the other is refused rather than half applied. */
function hashOnMatchesLb(policy: { lb: string; hashOn?: unknown }, ctx: z.RefinementCtx): void {
  if (policy.lb === 'ring-hash' && policy.hashOn === undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['hashOn'], message: 'lb ring-hash needs hashOn: the header, cookie or query parameter to hash' });
  if (policy.lb !== 'ring-hash' && policy.hashOn !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['hashOn'], message: `is read only with lb: ring-hash, not ${policy.lb}` });
}

export const servicePolicy = servicePolicyFields.superRefine(hashOnMatchesLb);
/** A service's policy without its endpoints (the control plane's: endpoints come from discovery). */
export const discoveredServicePolicy = servicePolicyFields.omit({ endpoints: true }).superRefine(hashOnMatchesLb);

export const split = z
  .record(subsetName, z.number().int().min(0).max(100))
  .refine((w) => Object.keys(w).length > 0, 'name at least one subset')
  .refine((w) => Object.values(w).reduce((a, b) => a + b, 0) === 100, 'weights must sum to 100');

export const fault = z
  .object({
    delay: z.object({ percent: percent.default(0), duration: policyDuration.default('0s') }).strict().optional(),
    abort: z.object({ percent: percent.default(0), status: z.number().int().min(200).max(599).default(503) }).strict().optional(),
  })
  .strict();

/**
 * Headers a route rule may not change, with why: the ones that frame the message or belong to
 * one connection (RFC 9110 §7.6.1), which each hop writes for itself; the authority (the way
 * to change it is `rewrite.host`); and the ones the sidecar owns, reads or writes on every
 * request (its `x-skein-*` headers, the trace and request id it continues, the client
 * certificate the destination's sidecar vouches for, gRPC's deadline and status).
 */
const UNCHANGEABLE: Readonly<Record<string, string>> = {
  connection: 'a connection-level (hop-by-hop) header: each hop writes its own',
  'keep-alive': 'a connection-level (hop-by-hop) header: each hop writes its own',
  'transfer-encoding': 'a connection-level (hop-by-hop) header: it frames the body, which each hop does for itself',
  te: 'a connection-level (hop-by-hop) header: each hop writes its own',
  trailer: 'a connection-level (hop-by-hop) header: each hop writes its own',
  upgrade: 'a connection-level (hop-by-hop) header: each hop writes its own',
  'http2-settings': 'a connection-level (hop-by-hop) header: each hop writes its own',
  expect: 'a connection-level header: the sidecar answers 100-continue itself',
  'content-length': 'frames the body: the sidecar sends the length the body has',
  host: 'the authority: change it with rewrite.host',
  'x-request-id': "the sidecar's own: it keeps the caller's request id or makes one",
  traceparent: "the sidecar's own: it continues the caller's trace with a span of its own",
  tracestate: "the sidecar's own: it continues the caller's trace with a span of its own",
  b3: "the sidecar's own: it continues the caller's trace with a span of its own",
  'x-forwarded-client-cert': "the sidecar's own: the destination's sidecar writes it from the caller's verified certificate",
};

/** Per direction: what the sidecar reads of a gRPC call (its deadline; its outcome, which retries, breakers and metrics judge). */
const UNCHANGEABLE_GRPC: Readonly<Record<'request' | 'response', readonly string[]>> = {
  request: ['grpc-timeout'],
  response: ['grpc-status', 'grpc-message', 'grpc-status-details-bin'],
};

/** Why a route rule's header change may not name `name`, or undefined. */
function unchangeableHeader(name: string, direction: 'request' | 'response'): string | undefined {
  const lower = name.toLowerCase();
  if (lower.startsWith(':')) return `${name} is a pseudo-header: change the path with rewrite.pathPrefix and the authority with rewrite.host`;
  if (!TOKEN.test(name)) return `${JSON.stringify(name)} is no header name (a token: letters, digits and !#$%&'*+-.^_\`|~)`;
  const why = ownEntry(UNCHANGEABLE, lower);
  if (why !== undefined) return `${lower} cannot be changed: ${why}`;
  if (lower.startsWith('proxy-')) return `${lower} cannot be changed: Proxy-* fields are each hop's (or, Proxy-Status, each proxy's entry), not a route's`;
  if (lower.startsWith('x-b3-')) return `${lower} cannot be changed: the sidecar's own: it continues the caller's trace with a span of its own`;
  if (lower.startsWith('x-skein-')) return `${lower} cannot be changed: Skein's own header, which the sidecar writes and reads`;
  if (UNCHANGEABLE_GRPC[direction].includes(lower)) return `${lower} cannot be changed: the sidecar reads it for the gRPC call's ${direction === 'request' ? 'deadline' : 'outcome'}`;
  return undefined;
}

/**
 * A header value a change writes: visible ASCII, spaces and tabs (RFC 9110 §5.5), without
 * leading or trailing whitespace, which receivers strip. CR or LF would end the header line
 * (a second header, or a request, smuggled in); other control characters and non-ASCII text
 * are refused by Node's HTTP stack at the first request, or reach the app as other bytes.
 */
const changedHeaderValue = z.string().superRefine((value, ctx) => {
  const bad = /[^\t\x20-\x7e]/.exec(value);
  if (bad !== null) {
    const c = bad[0].charCodeAt(0);
    const what = c === 13 || c === 10 ? 'CR or LF (it would end the header line)' : c < 0x20 || c === 0x7f ? `the control character U+${c.toString(16).padStart(4, '0').toUpperCase()}` : `the non-ASCII character ${JSON.stringify(bad[0])}`;
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: `must be printable ASCII, and holds ${what}` });
  } else if (/^[\t ]|[\t ]$/.test(value)) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must not start or end with whitespace (receivers strip it)' });
});

/**
 * A rule's changes to the request it forwards or the answer it passes back (Istio's
 * `headers.request`/`headers.response`, Consul's `RequestHeaders`/`ResponseHeaders`, Gateway
 * API's header modifiers): applied in the order remove, set, add, as Envoy's header parser
 * removes before it appends. Names are matched without regard to case.
 */
const headerChanges = (direction: 'request' | 'response') =>
  z
    .object({
      set: z.record(z.string(), changedHeaderValue).optional(),
      add: z.record(z.string(), changedHeaderValue).optional(),
      remove: z.array(z.string()).optional(),
    })
    .strict()
    .superRefine((c, ctx) => {
      const seen = new Map<string, string>();
      const check = (name: string, path: (string | number)[], field: 'set' | 'add' | 'remove') => {
        const problem = unchangeableHeader(name, direction);
        if (problem !== undefined) return ctx.addIssue({ code: z.ZodIssueCode.custom, path, message: problem });
        const lower = name.toLowerCase();
        const first = seen.get(`${field === 'add' ? 'add' : 'replace'} ${lower}`);
        if (first !== undefined) return ctx.addIssue({ code: z.ZodIssueCode.custom, path, message: `${lower} is ${first} already: ${field === 'add' ? 'add one line per name' : 'name a header in one of set and remove, once'}` });
        seen.set(`${field === 'add' ? 'add' : 'replace'} ${lower}`, `in ${field}`);
      };
      for (const name of Object.keys(c.set ?? {})) check(name, ['set', name], 'set');
      c.remove?.forEach((name, i) => check(name, ['remove', i], 'remove'));
      for (const name of Object.keys(c.add ?? {})) check(name, ['add', name], 'add');
    });

/** `host[:port]`, a DNS name or an IP address (IPv6 in brackets), as a Host header carries it. */
const AUTHORITY = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+))(?::([0-9]{1,5}))?$/;

function authorityProblem(value: string): string | undefined {
  const m = AUTHORITY.exec(value);
  const port = m?.[3] === undefined ? undefined : Number(m[3]);
  if (m === null || (m[1] !== undefined ? isIP(m[1]) !== 6 : isIP(m[2]!) !== 4 && !HOST_NAME.test(m[2]!)) || (port !== undefined && (port < 1 || port > 65535))) {
    return `must be a host name or IP address with an optional port (catalog.internal, 10.0.0.7:8080, [::1]:8080), not ${JSON.stringify(value)}`;
  }
  return undefined;
}

/**
 * Why a `rewrite.pathPrefix` could make a path the sidecar's normalisation would change or
 * refuse (the app would get a path no request of its own could have), or undefined. The rest
 * of the path after the matched prefix follows it: judged with nothing after it, with a
 * character, and, where the match does not end at a "/", with a "/" (`/api` matches `/api/x`).
 */
function rewritePrefixProblem(value: string, matchPrefix: string): string | undefined {
  if (value.includes('?') || value.includes('#')) return 'must be a path, without a query or fragment';
  if (/%[0-9A-Fa-f]?$/.test(value)) return 'must not end inside a percent-escape: the rest of the path would complete it';
  for (const judged of [value, `${value}x`]) {
    let normal: string;
    try {
      normal = normaliseTarget(judged, 'GET');
    } catch (err) {
      return `makes paths the sidecar refuses (400 bad-request): ${(err as Error).message}`;
    }
    if (normal !== judged) return `makes paths the sidecar would not forward as they are (unreserved escapes decoded, slashes merged, dot segments removed): write ${JSON.stringify(judged === value ? normal : normal.slice(0, -1))}`;
  }
  if (matchPrefix.endsWith('/') && !value.endsWith('/')) return `does not end with "/" where match.pathPrefix ${JSON.stringify(matchPrefix)} does, so ${matchPrefix}x would go on as ${value}x: end both with "/", or neither`;
  if (value.endsWith('/') && !matchPrefix.endsWith('/')) return `ends with "/" where match.pathPrefix ${JSON.stringify(matchPrefix)} does not, so ${matchPrefix}/x would go on as ${value}/x: end both with "/", or neither (to strip a prefix, match ${JSON.stringify(`${matchPrefix}/`)} and rewrite it to "/")`;
  return undefined;
}

/** Istio's `rewrite` (uri, authority), Consul's `PrefixRewrite`, Gateway API's URLRewrite: what the app gets in place of what the caller sent. */
const rewrite = z
  .object({
    /** Replaces the prefix `match.pathPrefix` matched (Consul's PrefixRewrite, Envoy's prefix_rewrite). */
    pathPrefix: z.string().startsWith('/', 'must start with "/"').optional(),
    /** The Host (HTTP/2 `:authority`) the app gets (Istio's `rewrite.authority`). */
    host: z
      .string()
      .superRefine((value, ctx) => {
        const problem = authorityProblem(value);
        if (problem !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
      })
      .optional(),
  })
  .strict()
  .refine((r) => r.pathPrefix !== undefined || r.host !== undefined, 'give pathPrefix, host or both');

export const routeRule = z
  .object({
    name: z.string().optional(),
    match: routeMatch.default({}),
    split: split.optional(),
    fault: fault.optional(),
    mirror: z.object({ subset: subsetName, percent: percent.default(0) }).strict().optional(),
    /** Per-rule overrides of the service policy. */
    timeout: policyDuration.optional(),
    retries: ruleRetryPolicy.optional(),
    /** Lets POST/PATCH (and gRPC methods) be retried after they reached the upstream. */
    retryNonIdempotent: z.boolean().default(false),
    /** What the app gets in place of the path prefix matched and the authority sent. */
    rewrite: rewrite.optional(),
    /** Changes to the request forwarded (every try, and mirror copies). */
    requestHeaders: headerChanges('request').optional(),
    /** Changes to the upstream's answer passed back to the caller (not to the sidecar's own). */
    responseHeaders: headerChanges('response').optional(),
  })
  .strict()
  .superRefine((rule, ctx) => {
    const replacement = rule.rewrite?.pathPrefix;
    if (replacement === undefined || !replacement.startsWith('/')) return;
    const matched = rule.match.pathPrefix;
    const problem =
      matched === undefined
        ? `replaces the prefix the rule matched, and this rule's match has ${rule.match.path !== undefined ? 'an exact path' : rule.match.pathRegex !== undefined ? 'a pathRegex' : 'no pathPrefix'}: match a pathPrefix (Skein has no whole-path or regex rewrite)`
        : rewritePrefixProblem(replacement, matched);
    if (problem !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['rewrite', 'pathPrefix'], message: problem });
  });

/** A rule's name: its own, or `rule-<index>` when unnamed. */
export function ruleName(rule: { readonly name?: string }, index: number): string {
  return rule.name ?? `rule-${index}`;
}

/** A service's rules; names (`rule-<index>` when unnamed) tell them apart in metrics, explain and the dashboard, so they are unique. */
export const routeRules = z.array(routeRule).superRefine((rules, ctx) => {
  const seen = new Map<string, number>();
  rules.forEach((rule, i) => {
    const name = ruleName(rule, i);
    const first = seen.get(name);
    if (first === undefined) seen.set(name, i);
    else ctx.addIssue({ code: z.ZodIssueCode.custom, path: [i, 'name'], message: `${JSON.stringify(name)} is the name of rule ${first} too` });
  });
});

const intentionAction = z.enum(['allow', 'deny']);

/**
 * One of an intention's HTTP permissions (Consul's `Permissions`: an `Action` and an `HTTP`
 * match): the requests `http` matches, with a route match's fields and checks, get `action`.
 */
export const intentionPermission = z
  .object({
    action: intentionAction,
    // Consul's spelling (`Methods`) refused with the one a route match has, rather than as an unknown field.
    http: z.preprocess((value, ctx) => {
      if (typeof value !== 'object' || value === null || !('methods' in value)) return value;
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['methods'], message: 'write method (one method or a list), as in a route match' });
      const { methods: _, ...rest } = value as Record<string, unknown>;
      return rest;
    }, routeMatch),
  })
  .strict();

/**
 * A rule decides the calls of its pair with `action` (L4: every call alike), or with
 * `permissions` (L7), read in order, the first whose `http` matches a request deciding it; a
 * request none matches gets the default action, as Consul does: the rule still governs its
 * pair's calls, and later rules are not read.
 */
export const intentionRule = z
  .object({
    source: z.union([serviceName, z.literal('*')]),
    destination: z.union([serviceName, z.literal('*')]),
    action: intentionAction.optional(),
    permissions: z.array(intentionPermission).min(1, 'must list at least one permission (for none, give action in place of permissions)').optional(),
  })
  .strict()
  .superRefine((rule, ctx) => {
    if (rule.action !== undefined && rule.permissions !== undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['permissions'], message: 'give action or permissions, not both: with permissions, the calls none matches get the default action' });
    } else if (rule.action === undefined && rule.permissions === undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'give action (allow or deny every call) or permissions (allow or deny by path, method and headers)' });
    }
    // A permission after one that matches every request is never read: refused as a hidden rule is.
    const all = rule.permissions?.findIndex((p) => matchesEveryRequest(p.http)) ?? -1;
    if (all < 0) return;
    for (let i = all + 1; i < rule.permissions!.length; i++) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['permissions', i], message: `never decides: permission ${all} matches every request` });
    }
  });

/** Intentions as stored and pushed: a rule that never decides is taken as it is (see `authoredIntentions`). */
export const intentions = z
  .object({
    defaultAction: z.enum(['allow', 'deny']).default('deny'),
    rules: z.array(intentionRule).default([]),
  })
  .strict();

/**
 * Intentions as an operator writes them (admin API, apply file, static config file): a rule
 * that never decides, because an earlier one matches every call it would, is refused, as it
 * reads as a decision the mesh does not make. Only where they are written: a store written
 * before this check may hold such rules, and must still load and reach sidecars.
 */
export const authoredIntentions = intentions.superRefine((value, ctx) => {
  for (const { index, hiddenBy } of hiddenRules(value.rules)) {
    const by = value.rules[hiddenBy]!;
    // Permissions do not let a call through to later rules: the ones they do not match get the default action.
    const how = by.permissions === undefined ? '' : ': its permissions decide them, the default action those none matches';
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['rules', index], message: `never decides: rule ${hiddenBy} (${by.source} -> ${by.destination}) matches every call it would${how}` });
  }
});

export const snapshot = z
  .object({
    // YAML reads `version: 1.10` as the number 1.1: a fractional number is refused rather than altered.
    version: z
      .union([z.string(), z.number()])
      .transform((v, ctx) => {
        if (typeof v === 'string' || Number.isInteger(v)) return String(v);
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${v} is a fractional number: quote the version as written (YAML reads 1.10 as the number 1.1)` });
        return z.NEVER;
      })
      .default('0'),
    services: z.record(serviceName, servicePolicy).default({}),
    routes: z.record(serviceName, routeRules).default({}),
    /** Absent means no authorization is configured and every caller is allowed. */
    intentions: intentions.optional(),
  })
  .strict();

/**
 * A snapshot as an operator writes it (a static config file): with the checks of
 * `authoredIntentions`, and no endpoint listed twice. A sidecar keeps one endpoint per address
 * and port (cluster/upstream-endpoint.ts), so a second entry, say a copy whose port was not
 * changed, would be dropped unseen with its labels, and its subset served by fewer instances
 * than the file shows. A pushed snapshot is not judged so: its endpoints are discovery's.
 */
export const authoredSnapshot = snapshot.extend({ intentions: authoredIntentions.optional() }).superRefine((value, ctx) => {
  for (const [service, policy] of Object.entries(value.services)) {
    failoverServiceProblems(service, policy, value.services, ctx);
    const seen = new Map<string, number>();
    policy.endpoints?.forEach((e, index) => {
      const key = `${e.address.toLowerCase()} port ${e.port}`;
      const first = seen.get(key);
      if (first === undefined) seen.set(key, index);
      else ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['services', service, 'endpoints', index], message: `${e.address} port ${e.port} is endpoints[${first}] again: one address and port is one endpoint (give this one its own port)` });
    });
  }
});

/**
 * What a service's failover lists say of other services, which its policy alone cannot judge:
 * a target service the snapshot does not list, or one of another protocol (its endpoints speak
 * what the request was not made for), and a target naming this service that is its own key or
 * another target again. Only where an operator writes the whole snapshot: a pushed one may lose
 * a target service with its last instance, and its sidecars skip such a target.
 */
function failoverServiceProblems(service: string, policy: ServicePolicy, services: Readonly<Record<string, ServicePolicy>>, ctx: z.RefinementCtx): void {
  for (const [key, targets] of Object.entries(policy.failover ?? {})) {
    const seen = new Map<string, number>();
    targets.forEach((t, i) => {
      const path = ['services', service, 'failover', key, i];
      const target = t.service ?? service;
      const other = ownEntry(services, target);
      if (other === undefined) return ctx.addIssue({ code: z.ZodIssueCode.custom, path: [...path, 'service'], message: `names ${target}, which is not in services: list it there (with its endpoints) or leave the target out` });
      if (other.protocol !== policy.protocol) return ctx.addIssue({ code: z.ZodIssueCode.custom, path: [...path, 'service'], message: `${target} speaks ${other.protocol}, ${service} ${policy.protocol}: a request fails over only to a service of its own protocol` });
      const id = `${target}/${t.subset ?? ALL_ENDPOINTS}`;
      const first = seen.get(id);
      if (first === undefined) seen.set(id, i);
      // Targets that leave service out are judged by the policy's own checks.
      if (t.service === undefined && (first === undefined || targets[first]!.service === undefined)) return;
      if (target === service && (t.subset ?? ALL_ENDPOINTS) === key) ctx.addIssue({ code: z.ZodIssueCode.custom, path, message: `is ${service}/${key}, the subset this list is for: a subset cannot fail over to itself` });
      else if (first !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path, message: `is the same target as [${first}]` });
    });
  }
}

export type SnapshotInput = z.input<typeof snapshot>;
export type Snapshot = z.output<typeof snapshot>;
export type ServicePolicy = z.output<typeof servicePolicy>;
export type ServicePolicyInput = z.input<typeof servicePolicy>;
export type RetryPolicy = z.output<typeof retryPolicy>;
export type RetryTries = z.output<typeof ruleRetryPolicy>;
export type CircuitBreakerPolicy = z.output<typeof circuitBreakerPolicy>;
export type OutlierPolicy = z.output<typeof outlierPolicy>;
export type RouteRule = z.output<typeof routeRule>;
export type RouteRuleInput = z.input<typeof routeRule>;
export type RouteMatch = z.output<typeof routeMatch>;
export type Endpoint = z.output<typeof endpoint>;
export type Intentions = z.output<typeof intentions>;
export type IntentionsInput = z.input<typeof intentions>;
export type IntentionRule = z.output<typeof intentionRule>;
export type IntentionRuleInput = z.input<typeof intentionRule>;
export type IntentionPermission = z.output<typeof intentionPermission>;
export type Fault = z.output<typeof fault>;
export type HashOn = z.output<typeof hashOn>;
export type Failover = z.output<typeof failover>;
export type FailoverTarget = z.output<typeof failoverTarget>;
export type Rewrite = z.output<typeof rewrite>;
export type HeaderChanges = z.output<ReturnType<typeof headerChanges>>;

/** The policy a service gets when the snapshot says nothing about it. */
export const defaultServicePolicy: ServicePolicy = servicePolicy.parse({});
