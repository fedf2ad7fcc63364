/**
 * Traffic mirroring of a route rule (SPEC §4 `mirror`, Istio's mirror / Envoy's
 * request_mirror_policies): a percentage of requests is copied to a subset, fire and forget.
 * The copy's answer is discarded and its failure is ignored, so the real request never
 * waits for or sees it. Only requests whose body is already buffered (at most 64 KiB) or
 * that have none are mirrored: a streamed body cannot be read twice. In-flight copies are
 * capped so a slow mirror target cannot pile up memory and sockets in the sidecar; the count
 * outlives the compiled stage (`MirrorInFlight`), so a reload does not open the cap afresh.
 *
 * Copies carry `x-skein-mirror: 1` so the target (and its metrics) can tell them apart.
 * Compiled per rule; a rule without an active mirror compiles to null.
 */
import type { Dispatcher } from 'undici';
import type { RouteRule } from '../../common/config/schema.js';

export const MIRROR_BODY_LIMIT = 64 * 1024;
export const MIRROR_HEADER = 'x-skein-mirror';

export interface MirrorRequest {
  readonly method: string;
  readonly path: string;
  /** Flat `[name, value, ...]` list, as sent upstream. */
  readonly headers: readonly string[];
  readonly body: Buffer | undefined;
  /** The request's ring-hash key (hash-key.ts), undefined for none: a copy goes where the subset's requests of that value go. */
  readonly hash?: number;
}

/** Sends a copy to an endpoint of `subset` (the upstream stage provides it); settles when the copy is done. */
export type MirrorSend = (subset: string, request: MirrorRequest) => Promise<unknown>;

export interface MirrorCounters {
  sent: number;
  failed: number;
  /** Requests chosen for mirroring but not copied: streamed or large body, or too many copies in flight. */
  skipped: number;
}

/**
 * Offers one request for mirroring. `body` is the buffered body, undefined for a request
 * without one, or null when the body streams (never mirrored); `hash` its ring-hash key.
 */
export type MirrorStage = (method: string, path: string, headers: readonly string[], body: Buffer | undefined | null, hash?: number) => void;

/**
 * The copies of a rule's mirror to one subset still in flight. Kept per service across
 * rebuilds (cluster/mesh.ts): a config or endpoint change compiles the rule again, while the
 * copies its previous build sent still hold their places; a count of the stage's own would let
 * each reload send another `maxInFlight` to a target that never answers.
 */
export interface MirrorInFlight {
  count: number;
}

export interface MirrorOptions {
  readonly maxInFlight?: number;
  readonly random?: () => number;
  readonly counters?: MirrorCounters;
}

/** `inFlight` gives the long-lived count of the rule's copies to a subset; asked only when the mirror is on. */
export function compileMirror(mirror: RouteRule['mirror'], send: MirrorSend, inFlight: (subset: string) => MirrorInFlight, options: MirrorOptions = {}): MirrorStage | null {
  if (mirror === undefined || mirror.percent <= 0) return null;
  const { subset, percent } = mirror;
  const maxInFlight = options.maxInFlight ?? 64;
  const random = options.random ?? Math.random;
  const counters = options.counters ?? { sent: 0, failed: 0, skipped: 0 };
  const copies = inFlight(subset);
  const done = (): void => {
    copies.count--;
  };
  const failed = (): void => {
    counters.failed++;
    copies.count--;
  };

  return (method, path, headers, body, hash) => {
    if (percent < 100 && random() * 100 >= percent) return;
    if (body === null || (body !== undefined && body.length > MIRROR_BODY_LIMIT) || copies.count >= maxInFlight) {
      counters.skipped++;
      return;
    }
    copies.count++;
    counters.sent++;
    let copy: Promise<unknown>;
    try {
      copy = send(subset, { method, path, headers: [...headers, MIRROR_HEADER, '1'], body, hash });
    } catch {
      failed();
      return;
    }
    copy.then(done, failed);
  };
}

/**
 * Sends one copy on an endpoint's pool and reads its answer to the end (dropping it), so the
 * connection returns to the pool; `timeoutMs` bounds a stalled mirror.
 */
export async function dispatchCopy(pool: Dispatcher, request: MirrorRequest, timeoutMs: number): Promise<void> {
  const { body } = await pool.request({
    method: request.method as Dispatcher.HttpMethod,
    path: request.path,
    headers: request.headers as string[],
    body: request.body ?? null,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  await body.dump();
}
