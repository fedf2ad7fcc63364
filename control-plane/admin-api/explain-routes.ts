/**
 * `GET /api/v1/explain`: what the newest snapshot does with a described request — the rule
 * that matches and why earlier ones did not, the split with each subset's endpoints, and
 * the timeout, retry, breaker and outlier policy in force (rule overrides applied). The
 * matching is common/routing's, the same code the sidecars run.
 */
import { z } from 'zod';
import { formatDuration } from '../../common/config/duration.js';
import { parseSnapshot, validate } from '../../common/config/parse.js';
import { defaultServicePolicy, serviceName, type RetryPolicy, type Snapshot } from '../../common/config/schema.js';
import { explainRequest, type Explanation } from '../../common/routing/index.js';
import type { SnapshotPublisher } from '../state/snapshots.js';
import type { Router } from './router.js';

const explainQuery = z
  .object({
    // A name no service can have is a mistake in the question, not a request no rule routes.
    service: serviceName,
    method: z.string().regex(/^[A-Za-z]+$/, 'must be an HTTP method').default('GET'),
    path: z.string().startsWith('/', 'must start with "/"').default('/'),
    header: z.array(z.string().regex(/^[^:\s]+:.*$/, 'must be NAME:VALUE')).default([]),
  })
  .strict();

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

function retriesView(r: RetryPolicy): PolicyInForce['retries'] {
  return {
    attempts: r.attempts,
    perTryTimeout: formatDuration(r.perTryTimeout),
    on: [...r.on],
    backoff: { base: formatDuration(r.backoff.base), max: formatDuration(r.backoff.max) },
    budget: { ...r.budget },
  };
}

export function policyInForce(snapshot: Snapshot, explanation: Explanation): PolicyInForce | undefined {
  if (!explanation.matched) return undefined;
  const policy = snapshot.services[explanation.service] ?? defaultServicePolicy;
  const rule = explanation.matched.implicit ? undefined : snapshot.routes[explanation.service]?.[explanation.matched.index];
  const cb = policy.circuitBreaker;
  const od = policy.outlierDetection;
  return {
    protocol: policy.protocol,
    lb: policy.lb,
    timeout: formatDuration(rule?.timeout ?? policy.timeout),
    retries: retriesView(rule?.retries ?? policy.retries),
    retryNonIdempotent: rule?.retryNonIdempotent ?? false,
    circuitBreaker: { ...cb, rollingWindow: formatDuration(cb.rollingWindow), resetTimeout: formatDuration(cb.resetTimeout) },
    outlierDetection: { ...od, baseEjectionTime: formatDuration(od.baseEjectionTime) },
    ...(rule?.fault ? { fault: rule.fault } : {}),
    ...(rule?.mirror ? { mirror: rule.mirror } : {}),
  };
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
      { name: 'method', description: 'HTTP method (default GET)' },
      { name: 'path', description: 'request path (default /)' },
      { name: 'header', description: 'NAME:VALUE, repeatable' },
    ],
    handler: async ({ query }) => {
      const q = validate(explainQuery, {
        ...(query.has('service') ? { service: query.get('service') } : {}),
        ...(query.has('method') ? { method: query.get('method') } : {}),
        ...(query.has('path') ? { path: query.get('path') } : {}),
        header: query.getAll('header'),
      });
      const published = deps.publisher.current();
      const snapshot = parsedSnapshot(published);
      const headers = Object.fromEntries(q.header.map((h) => [h.slice(0, h.indexOf(':')).trim().toLowerCase(), h.slice(h.indexOf(':') + 1).trim()]));
      const method = q.method.toUpperCase();
      const explanation = explainRequest(snapshot, { service: q.service, method, path: q.path, headers });
      const policy = policyInForce(snapshot, explanation);
      const answer: ExplainAnswer = { ...explanation, snapshotVersion: published.version, request: { method, path: q.path, headers }, ...(policy ? { policy } : {}) };
      return { body: answer };
    },
  });
}
