/**
 * `GET /api/v1/explain`: what the newest snapshot does with a described request — the rule
 * that matches and why earlier ones did not, the split with each subset's endpoints, and
 * the timeout, retry, breaker and outlier policy in force (rule overrides applied). The
 * matching is common/routing's, the same code the sidecars run.
 */
import { z } from 'zod';
import { formatDuration } from '../../common/config/duration.js';
import { parseSnapshot } from '../../common/config/parse.js';
import { defaultServicePolicy, methodName, requestPath, serviceName, type RetryPolicy, type RetryTries, type Snapshot } from '../../common/config/schema.js';
import { explainRequest, joinFieldLines, type Explanation } from '../../common/routing/index.js';
import type { SnapshotPublisher } from '../state/snapshots.js';
import { ownEntry } from '../../common/config/own.js';
import { ApiError } from './errors.js';
import { parameter, queryParam } from './query-param.js';
import type { Router } from './router.js';

// A header line as `skein explain -H` takes it.
const headerLine = z.string().regex(/^[^:\s]+:.*$/, 'must be NAME:VALUE');

export interface PolicyInForce {
  protocol: string;
  lb: string;
  timeout: string;
  retries: { attempts: number; perTryTimeout: string; on: string[]; backoff: { base: string; max: string }; budget: { ratio: number; minPerSecond: number } };
  retryNonIdempotent: boolean;
  circuitBreaker: { errorThresholdPercentage: number; volumeThreshold: number; rollingWindow: string; resetTimeout: string; maxConcurrent: number };
  outlierDetection: { consecutiveErrors: number; baseEjectionTime: string; maxEjectionPercent: number };
  fault?: unknown;
  mirror?: unknown;
}

export type ExplainAnswer = Explanation & { snapshotVersion: string; request: { method: string; path: string; headers: Record<string, string> }; policy?: PolicyInForce };

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

export function policyInForce(snapshot: Snapshot, explanation: Explanation): PolicyInForce | undefined {
  if (!explanation.matched) return undefined;
  const policy = ownEntry(snapshot.services, explanation.service) ?? defaultServicePolicy;
  const rule = explanation.matched.implicit ? undefined : ownEntry(snapshot.routes, explanation.service)?.[explanation.matched.index];
  const cb = policy.circuitBreaker;
  const od = policy.outlierDetection;
  return {
    protocol: policy.protocol,
    lb: policy.lb,
    timeout: formatDuration(rule?.timeout ?? policy.timeout),
    retries: retriesView(rule?.retries ?? policy.retries, policy.retries.budget),
    retryNonIdempotent: rule?.retryNonIdempotent ?? false,
    circuitBreaker: { ...cb, rollingWindow: formatDuration(cb.rollingWindow), resetTimeout: formatDuration(cb.resetTimeout) },
    outlierDetection: { ...od, baseEjectionTime: formatDuration(od.baseEjectionTime) },
    ...(rule?.fault ? { fault: rule.fault } : {}),
    ...(rule?.mirror ? { mirror: rule.mirror } : {}),
  };
}

/**
 * `NAME:VALUE` lines as a request's header fields, each as the one value the rules are matched
 * on: lower-case names, and a name given again a repeated line, joined as a sidecar joins them.
 */
function headerFields(lines: readonly string[]): Record<string, string> {
  // A Map: a header may be named `constructor` or `__proto__` (HTTP tokens both).
  const fields = new Map<string, string[]>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    fields.set(name, [...(fields.get(name) ?? []), line.slice(colon + 1).trim()]);
  }
  return Object.fromEntries([...fields].map(([name, values]) => [name, joinFieldLines(values)]));
}

export function registerExplainRoutes(router: Router, deps: { publisher: SnapshotPublisher }): void {
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
      const policy = policyInForce(snapshot, explanation);
      const answer: ExplainAnswer = { ...explanation, snapshotVersion: published.version, request: { method, path, headers }, ...(policy ? { policy } : {}) };
      return { body: answer };
    },
  });
}
