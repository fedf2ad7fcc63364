/**
 * `skein explain`: for a described request, the rule that matches, why each earlier rule did
 * not, and where the split sends it. Pure: reads a snapshot, used by the control plane's API.
 */
import type { Endpoint, Snapshot } from '../config/schema.js';
import { ownEntry } from '../config/own.js';
import { HttpParseError } from '../http/parse-error.js';
import { normaliseTarget } from '../http/request-target.js';
import type { HeaderMap } from './match.js';
import { readFailover, type FailoverStep, type SkippedFailoverStep } from './failover.js';
import { rewritePrefix } from './rewrite.js';
import { ALL_ENDPOINTS } from './split.js';
import { selectEndpoints, subsetSelector } from './subsets.js';
import { compileRoutes } from './table.js';

export interface DescribedRequest {
  readonly service: string;
  readonly method: string;
  readonly path: string;
  readonly headers?: HeaderMap;
}

export interface SplitTarget {
  readonly subset: string;
  readonly weight: number;
  /** The labels the subset selects by ({} for every endpoint). */
  readonly selector: Readonly<Record<string, string>>;
  /** Matching endpoints, when the snapshot lists endpoints (static mode). */
  readonly endpoints?: readonly Endpoint[];
  /** Where its requests go when it has no healthy endpoint, in order (absent: nowhere), each with its endpoints as `endpoints`. */
  readonly failover?: readonly (FailoverStep & { readonly endpoints?: readonly Endpoint[] })[];
  /** Targets of its failover list the sidecars leave out, with why (absent: none). */
  readonly failoverSkipped?: readonly SkippedFailoverStep[];
}

export interface Explanation {
  readonly service: string;
  /** The path the rules are matched against: the request's, normalised as a sidecar does (dot segments, merged slashes, unreserved escapes). */
  readonly path: string;
  /** Why a sidecar answers the request 400 (bad-request) before routing it: a path it refuses. Nothing else is then set. */
  readonly refused?: string;
  /** False when the snapshot does not know the service: the request gets 404 no-route. */
  readonly known: boolean;
  readonly matched?: { readonly index: number; readonly name: string; readonly implicit: boolean };
  /** Earlier rules, each with the reasons it did not match. */
  readonly skipped: readonly { readonly index: number; readonly name: string; readonly reasons: readonly string[] }[];
  readonly split: readonly SplitTarget[];
  /** The path (without its query) the matched rule forwards in place of `path`, when it rewrites the prefix. */
  readonly rewrittenPath?: string;
}

function lowerKeys(headers: HeaderMap | undefined): HeaderMap {
  // Own properties whatever the name (`out['__proto__'] = v` would set the prototype instead).
  return Object.fromEntries(Object.entries(headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
}

/** The request's path as a sidecar routes it (without the query), or why a sidecar refuses it. */
function routedPath(request: DescribedRequest, method: string): { path: string; refused?: string } {
  try {
    return { path: normaliseTarget(request.path, method).split('?')[0]! };
  } catch (err) {
    if (err instanceof HttpParseError) return { path: request.path.split('?')[0]!, refused: err.message };
    throw err;
  }
}

export function explainRequest(snapshot: Snapshot, request: DescribedRequest): Explanation {
  // As sent, as a sidecar matches it: `get` is not GET (RFC 9110 §9.1).
  const method = request.method;
  const { path, refused } = routedPath(request, method);
  if (refused !== undefined) return { service: request.service, path, refused, known: true, skipped: [], split: [] };
  const policy = ownEntry(snapshot.services, request.service);
  const rules = ownEntry(snapshot.routes, request.service);
  if (policy === undefined && rules === undefined) return { service: request.service, path, known: false, skipped: [], split: [] };
  const table = compileRoutes(rules);
  const headers = lowerKeys(request.headers);
  // A described request's Host is the authority it is sent with, which `host` checks read. A
  // request reaches a sidecar's rules only with an authority naming the service (an --upstream
  // port forwards its service's name), so one described without a Host is sent with `Host: SERVICE`.
  const host = headers.host;
  const authority = (Array.isArray(host) ? host[0] : host) ?? request.service;
  const skipped: { index: number; name: string; reasons: string[] }[] = [];
  for (const compiled of table.rules) {
    const reasons = compiled.match.explain(method, path, headers, authority);
    if (reasons.length > 0) {
      skipped.push({ index: compiled.index, name: compiled.name, reasons });
      continue;
    }
    const split = compiled.split.subsets.map((subset, i) => {
      const { selector, endpoints } = subsetOf(snapshot, request.service, subset);
      const { steps, skipped } = readFailover(snapshot.services, request.service, subset);
      const failover = steps.map((step) => ({ ...step, ...endpointsOf(subsetOf(snapshot, step.service, step.subset).endpoints) }));
      return { subset, weight: compiled.split.weights[i]!, selector, ...endpointsOf(endpoints), ...(failover.length > 0 ? { failover } : {}), ...(skipped.length > 0 ? { failoverSkipped: skipped } : {}) };
    });
    const replacement = compiled.rule.rewrite?.pathPrefix;
    const rewritten = replacement === undefined ? {} : { rewrittenPath: rewritePrefix(path, compiled.rule.match.pathPrefix!, replacement) };
    return { service: request.service, path, known: true, matched: { index: compiled.index, name: compiled.name, implicit: rules === undefined || rules.length === 0 }, skipped, split, ...rewritten };
  }
  return { service: request.service, path, known: true, skipped, split: [] };
}

/** The labels `service`'s `subset` selects by, and its endpoints when the snapshot lists the service's. */
function subsetOf(snapshot: Snapshot, service: string, subset: string): { selector: Readonly<Record<string, string>>; endpoints?: Endpoint[] } {
  const policy = ownEntry(snapshot.services, service);
  const selector = policy ? subsetSelector(policy, subset) : subset === ALL_ENDPOINTS ? {} : { version: subset };
  return policy?.endpoints ? { selector, endpoints: selectEndpoints(selector, policy.endpoints) } : { selector };
}

function endpointsOf(endpoints: Endpoint[] | undefined): { endpoints?: Endpoint[] } {
  return endpoints ? { endpoints } : {};
}
