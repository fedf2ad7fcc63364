/**
 * `GET /api/v1/explain`: what the newest snapshot does with a described request — the rule
 * that matches and why earlier ones did not, the split with each subset's endpoints, and
 * the timeout, retry, breaker and outlier policy in force (rule overrides applied). The
 * matching is common/routing's, the same code the sidecars run; given the caller (`source`),
 * also whether the destination's intentions admit it (the sidecars' evaluator) and which of
 * the breakers its sidecars hold for each subset are open, and which of the destination's
 * endpoints they hold ejected (outlier detection), as they last reported them.
 */
import { z } from 'zod';
import { formatDuration } from '../../common/config/duration.js';
import { parseSnapshot } from '../../common/config/parse.js';
import { defaultServicePolicy, methodName, requestPath, serviceName, type HashOn, type HeaderChanges, type RetryPolicy, type RetryTries, type Rewrite, type Snapshot } from '../../common/config/schema.js';
import { explainRequest, joinFieldLines, type Explanation } from '../../common/routing/index.js';
import type { SnapshotPublisher } from '../state/snapshots.js';
import { ownEntry } from '../../common/config/own.js';
import { compileIntentions, decidesPerRequest, permissionMatches } from '../../sidecar/authz/intentions.js';
import { compileHeaderEdit } from '../../sidecar/stages/route-changes.js';
import { isRetryableMethod } from '../../sidecar/resilience/retry-decision.js';
import { notEjected } from '../../sidecar/balancers/balancer.js';
import { compileHashValue } from '../../sidecar/balancers/hash-key.js';
import { ringHash, ringHashPicker } from '../../sidecar/balancers/ring-hash.js';
import { endpointKey } from '../../sidecar/cluster/upstream-endpoint.js';
import type { BreakerView, EjectionView } from '../observability/stats.js';
import { ApiError } from './errors.js';
import { parameter, queryParam } from './query-param.js';
import type { Router } from './router.js';

// A header line as `skein explain -H` takes it.
const headerLine = z.string().regex(/^[^:\s]+:.*$/, 'must be NAME:VALUE');

export interface PolicyInForce {
  protocol: string;
  lb: string;
  /** With `lb: ring-hash`: what it hashes. */
  hashOn?: HashOn;
  timeout: string;
  retries: { attempts: number; perTryTimeout: string; on: RetryTries['on']; backoff: { base: string; max: string }; budget: { ratio: number; minPerSecond: number } };
  retryNonIdempotent: boolean;
  /**
   * Whether this request may be retried after it reached the upstream (its method idempotent, or
   * the rule's `retryNonIdempotent`); false: only a try that never reached it (connect-failure) is.
   */
  retriedAfterSent: boolean;
  circuitBreaker: { errorThresholdPercentage: number; volumeThreshold: number; rollingWindow: string; resetTimeout: string; maxConcurrent: number };
  outlierDetection: { consecutiveErrors: number; baseEjectionTime: string; maxEjectionPercent: number };
  fault?: unknown;
  mirror?: unknown;
  /** The rule's `rewrite`, `requestHeaders` and `responseHeaders`, as written. */
  rewrite?: Rewrite;
  requestHeaders?: HeaderChanges;
  responseHeaders?: HeaderChanges;
}

/** What the destination's sidecar does with a call from `source`: admitted, or answered 403 denied. */
export interface IntentionVerdict {
  source: string;
  allowed: boolean;
  /**
   * The rule that decided (an L4 rule's action), one of its permissions, else the default action
   * did (no rule matched the pair, or none of its rule's permissions the request), or there are
   * no intentions (everything allowed).
   */
  decidedBy: 'rule' | 'permission' | 'defaultAction' | 'no-intentions';
  /** The rule governing the pair; `action` absent when it decides by permissions. */
  rule?: { index: number; source: string; destination: string; action?: 'allow' | 'deny' };
  /** The permission that decided, when one did. */
  permission?: { index: number; action: 'allow' | 'deny' };
  /** When the rule's permissions decide and none matched: why each did not. */
  unmatchedPermissions?: { index: number; reasons: string[] }[];
}

/** A caller's sidecar whose breaker for a subset of the split is open or half-open: it answers 503 circuit-open instead of sending there. */
export type OpenBreaker = Pick<BreakerView, 'service' | 'instance' | 'subset' | 'state'>;

/** A caller's sidecar that holds an endpoint of the destination ejected: it sends it nothing until `until` while another endpoint is not ejected. */
export type EjectedEndpoint = Omit<EjectionView, 'destination'>;

export type ExplainAnswer = Explanation & {
  snapshotVersion: string;
  request: { method: string; path: string; headers: Record<string, string>; source?: string };
  policy?: PolicyInForce;
  intention?: IntentionVerdict;
  /** Breakers callers' sidecars (only `source`'s, when given) hold open for the split's subsets; empty when none is. */
  openBreakers?: OpenBreaker[];
  /** Endpoints of the service callers' sidecars (only `source`'s, when given) hold ejected; empty when none is. */
  ejectedEndpoints?: EjectedEndpoint[];
  /** For a ring-hash destination: the value the request is hashed by, and where that sends it in each subset of the split. */
  affinity?: Affinity;
};

export interface Affinity {
  /** The value of `hashOn` in the described request, null when it does not carry it (balanced at random). */
  value: string | null;
  /** Per subset of the split whose endpoints the snapshot lists: the endpoint the value goes to while none is ejected. */
  endpoints: { subset: string; endpoint: string }[];
}

/** Where a ring-hash destination sends the described request: the ring a sidecar builds over the same endpoints (sidecar/balancers/ring-hash.ts). */
export function affinityOf(on: HashOn, explanation: Explanation, headers: Record<string, string>, path: string): Affinity {
  const value = compileHashValue(on)(headers, path, headers.host ?? explanation.service) ?? null;
  const endpoints: Affinity['endpoints'] = [];
  if (value === null) return { value, endpoints };
  const hash = ringHash(value);
  for (const target of explanation.split) {
    if (!target.endpoints?.length) continue;
    const ring = ringHashPicker(target.endpoints.map((e) => ({ key: endpointKey(e.address, e.port), active: 0 })), notEjected);
    endpoints.push({ subset: target.subset, endpoint: ring.pick(undefined, hash)!.key });
  }
  return { value, endpoints };
}

/**
 * The intentions' verdict on the explained request as the destination's sidecar gets it: with
 * the matched rule's rewrites (its path and Host) and request header changes, as its
 * permissions are matched there.
 */
export function intentionVerdict(snapshot: Snapshot, source: string, explanation: Explanation, headers: Record<string, string>, method: string, policy: PolicyInForce | undefined): IntentionVerdict {
  const destination = explanation.service;
  const verdict = compileIntentions(snapshot.intentions)(source, destination);
  if (!decidesPerRequest(verdict) && verdict.rule === undefined) return { source, allowed: verdict.allowed, decidedBy: snapshot.intentions ? 'defaultAction' : 'no-intentions' };
  const { permissions, ...rule } = snapshot.intentions!.rules[verdict.rule!]!;
  const shown = { index: verdict.rule!, ...rule };
  if (!decidesPerRequest(verdict)) return { source, allowed: verdict.allowed, decidedBy: 'rule', rule: shown };
  const path = (explanation.rewrittenPath ?? explanation.path).split('?')[0]!;
  const authority = policy?.rewrite?.host ?? headers.host ?? destination;
  const received = changedFields(headers, policy?.requestHeaders);
  const decision = verdict.decide(method, path, received, authority);
  if (decision.permission !== undefined) return { source, allowed: decision.allowed, decidedBy: 'permission', rule: shown, permission: { index: decision.permission, action: permissions![decision.permission]!.action } };
  const unmatchedPermissions = permissionMatches(permissions!).map((m, index) => ({ index, reasons: m.explain(method, path, received, authority) }));
  return { source, allowed: decision.allowed, decidedBy: 'defaultAction', rule: shown, unmatchedPermissions };
}

/** A rule's tries (or the service's) with the service's budget, the only one. */
function retriesView(r: RetryTries, budget: RetryPolicy['budget']): PolicyInForce['retries'] {
  return {
    attempts: r.attempts,
    perTryTimeout: formatDuration(r.perTryTimeout),
    on: [...r.on],
    backoff: { base: formatDuration(r.backoff.base), max: formatDuration(r.backoff.max) },
    budget: { ...budget },
  };
}

/** The policy a sidecar applies to the explained request, whose method (as sent) decides whether it is replayed. */
export function policyInForce(snapshot: Snapshot, explanation: Explanation, method: string): PolicyInForce | undefined {
  if (!explanation.matched) return undefined;
  const policy = ownEntry(snapshot.services, explanation.service) ?? defaultServicePolicy;
  const rule = explanation.matched.implicit ? undefined : ownEntry(snapshot.routes, explanation.service)?.[explanation.matched.index];
  const cb = policy.circuitBreaker;
  const od = policy.outlierDetection;
  return {
    protocol: policy.protocol,
    lb: policy.lb,
    ...(policy.hashOn ? { hashOn: policy.hashOn } : {}),
    timeout: formatDuration(rule?.timeout ?? policy.timeout),
    retries: retriesView(rule?.retries ?? policy.retries, policy.retries.budget),
    retryNonIdempotent: rule?.retryNonIdempotent ?? false,
    retriedAfterSent: isRetryableMethod(method, rule?.retryNonIdempotent ?? false),
    circuitBreaker: { ...cb, rollingWindow: formatDuration(cb.rollingWindow), resetTimeout: formatDuration(cb.resetTimeout) },
    outlierDetection: { ...od, baseEjectionTime: formatDuration(od.baseEjectionTime) },
    ...(rule?.fault ? { fault: rule.fault } : {}),
    ...(rule?.mirror ? { mirror: rule.mirror } : {}),
    ...(rule?.rewrite ? { rewrite: rule.rewrite } : {}),
    ...(rule?.requestHeaders ? { requestHeaders: rule.requestHeaders } : {}),
    ...(rule?.responseHeaders ? { responseHeaders: rule.responseHeaders } : {}),
  };
}

/**
 * `NAME:VALUE` lines as a request's header fields, each as the one value the rules are matched
 * on: lower-case names, and a name given again a repeated line, joined as a sidecar joins them.
 */
function headerFields(lines: readonly string[]): Record<string, string> {
  return joinedFields(
    lines.map((line) => {
      const colon = line.indexOf(':');
      return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()] as const;
    }),
  );
}

/** Header fields as routes and permissions match them: a repeated name's values joined with ", ". */
function joinedFields(pairs: Iterable<readonly [string, string]>): Record<string, string> {
  // A Map: a header may be named `constructor` or `__proto__` (HTTP tokens both).
  const fields = new Map<string, string[]>();
  for (const [name, value] of pairs) fields.set(name, [...(fields.get(name) ?? []), value]);
  return Object.fromEntries([...fields].map(([name, values]) => [name, joinFieldLines(values)]));
}

/** `headers` as the destination's sidecar gets them: with the matched rule's request header changes made, by the sidecar's own code. */
function changedFields(headers: Record<string, string>, changes: HeaderChanges | undefined): Record<string, string> {
  const edit = compileHeaderEdit(changes);
  if (edit === null) return headers;
  const flat = Object.entries(headers).flat();
  edit(flat);
  const pairs: (readonly [string, string])[] = [];
  for (let i = 0; i < flat.length; i += 2) pairs.push([flat[i]!, flat[i + 1]!]);
  return joinedFields(pairs);
}

export interface ExplainDeps {
  publisher: SnapshotPublisher;
  /** The breakers callers' sidecars report not closed for a destination (observability/stats.ts). */
  breakersTo(destination: string): BreakerView[];
  /** The endpoints of a destination callers' sidecars hold ejected (observability/stats.ts). */
  ejectionsTo(destination: string): EjectionView[];
}

export function registerExplainRoutes(router: Router, deps: ExplainDeps): void {
  // Parsing a large snapshot is slow (zod); parse each version once.
  let parsed: { version: string; snapshot: Snapshot } | undefined;
  const parsedSnapshot = (published: { version: string; json: string }): Snapshot => {
    if (parsed?.version !== published.version) parsed = { version: published.version, snapshot: parseSnapshot(JSON.parse(published.json)) };
    return parsed.snapshot;
  };
  router.add({
    method: 'GET',
    path: '/api/v1/explain',
    summary: 'Which route rule, split, endpoints and policy a described request would get, and why the other rules did not match',
    auth: false,
    query: [
      { name: 'service', required: true, description: 'destination service' },
      { name: 'method', description: 'HTTP method as sent, case-sensitive as sidecars match it (left out: GET)' },
      { name: 'path', description: 'request path (left out: /)' },
      { name: 'header', description: 'NAME:VALUE, repeatable; a name given again is a repeated header line' },
      { name: 'source', description: 'calling service: adds whether intentions admit it, and counts only its sidecars\' open breakers and ejections' },
    ],
    handler: async ({ query }) => {
      // A name no service can have is a mistake in the question, not a request no rule routes:
      // a 400 naming the parameter, as every route answers a malformed one. So is an empty or a
      // repeated one: the default (GET, /) or the first value in its place would explain a
      // request that was not described.
      const service = queryParam(query, 'service', serviceName);
      if (!service) throw new ApiError('bad-request', 'give the service to explain: /api/v1/explain?service=NAME&method=GET&path=/');
      // Any method a route may match (M-SEARCH, PROPFIND), taken as sent: a sidecar matches it case-sensitively.
      const method = queryParam(query, 'method', methodName) ?? 'GET';
      const path = queryParam(query, 'path', requestPath) ?? '/';
      const lines = query.getAll('header').map((line) => parameter('header', line, headerLine));
      const published = deps.publisher.current();
      const snapshot = parsedSnapshot(published);
      const headers = headerFields(lines);
      const explanation = explainRequest(snapshot, { service, method, path, headers });
      const policy = policyInForce(snapshot, explanation, method);
      const source = queryParam(query, 'source', serviceName);
      const subsets = new Set(explanation.split.map((t) => t.subset));
      const openBreakers = explanation.matched
        ? deps
            .breakersTo(service)
            .filter((b) => subsets.has(b.subset) && (source === undefined || b.service === source))
            .map(({ service: caller, instance, subset, state }) => ({ service: caller, instance, subset, state }))
        : undefined;
      const ejectedEndpoints = explanation.matched
        ? deps
            .ejectionsTo(service)
            .filter((e) => source === undefined || e.service === source)
            .map(({ destination: _, ...ejection }) => ejection)
        : undefined;
      const answer: ExplainAnswer = {
        ...explanation,
        snapshotVersion: published.version,
        request: { method, path, headers, ...(source ? { source } : {}) },
        ...(policy ? { policy } : {}),
        ...(source && explanation.known && explanation.refused === undefined ? { intention: intentionVerdict(snapshot, source, explanation, headers, method, policy) } : {}),
        ...(openBreakers ? { openBreakers } : {}),
        ...(ejectedEndpoints ? { ejectedEndpoints } : {}),
        ...(policy?.hashOn ? { affinity: affinityOf(policy.hashOn, explanation, headers, path) } : {}),
      };
      return { body: answer };
    },
  });
}
