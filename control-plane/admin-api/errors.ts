/**
 * Admin API errors: every failure is `{ "error": { "code", "message" } }` with a 4xx/5xx
 * status (SPEC §5). The codes are stable; the CLI prints the message.
 */
import { ConfigError } from '../../common/config/parse.js';
import { conflictDetails, RunningCanaryError } from '../canary/conflicts.js';
import { CanaryElsewhereError } from '../canary/controller.js';
import { InstancesNotKnownError } from '../state/registry-gap.js';
import { SnapshotTooLargeError } from '../state/snapshot-size.js';
import { ShadowedSplitError } from '../state/split-rule.js';
import { StoreConflictError, StoreLimitError, StoreUnavailableError } from '../store/store.js';
import { StoredConfigError } from '../store/stored-entries.js';

export const API_ERRORS = {
  'bad-request': 400,
  unauthorized: 401,
  forbidden: 403,
  'not-found': 404,
  'method-not-allowed': 405,
  conflict: 409,
  'precondition-failed': 412,
  'payload-too-large': 413,
  'unsupported-media-type': 415,
  'header-too-large': 431,
  invalid: 422,
  'precondition-required': 428,
  internal: 500,
  unavailable: 503,
} as const;

export type ApiErrorCode = keyof typeof API_ERRORS;

/** How the router's 404 for a path it has no route for begins: a CLI newer than the control plane reads it as the control plane being older. */
export const NO_SUCH_ENDPOINT = 'no such endpoint: ';

export class ApiError extends Error {
  override name = 'ApiError';
  readonly status: number;

  constructor(
    readonly code: ApiErrorCode,
    message: string,
    /** For 422: one line per problem, each starting with the field's path. */
    readonly problems?: readonly string[],
    /** More fields of the error object, e.g. `canaries` of a 409 for a running rollout. */
    readonly details?: Record<string, unknown>,
    /** Response headers that go with it, e.g. `www-authenticate` of a 401, `retry-after` of a 503. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.status = API_ERRORS[code];
  }
}

/** Maps what handlers throw to an ApiError; anything unknown is a 500 (and gets logged). */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof InstancesNotKnownError) return notKnownYet(err);
  if (err instanceof ConfigError) return new ApiError('invalid', err.message, err.problems);
  // A write that would change what a running canary rollout steers: refused, nothing written.
  if (err instanceof RunningCanaryError) return new ApiError('conflict', err.message, undefined, { canaries: conflictDetails(err.conflicts) });
  // A rollout action sent to a replica that does not drive them: sent on to the one that does,
  // named, or tried again once the lease has changed hands.
  if (err instanceof CanaryElsewhereError) {
    return err.driver === undefined
      ? new ApiError('unavailable', err.message, undefined, undefined, { 'retry-after': '5' })
      : new ApiError('conflict', err.message, undefined, { driver: err.driver });
  }
  // A valid split that the service's current rules would keep from some of its requests: the
  // rules are what must change, so a conflict with them rather than an invalid body.
  if (err instanceof ShadowedSplitError) return new ApiError('conflict', err.message, undefined, { shadowedBy: err.shadowing });
  if (err instanceof StoreConflictError) {
    return new ApiError(
      'precondition-failed',
      err.actual === 0 ? `${err.key} does not exist any more; re-read it and retry` : `${err.key} changed since you read it (now at revision ${err.actual}); re-read it and retry`,
    );
  }
  // Sidecars could not take the snapshot the write would make: the write is what must shrink.
  if (err instanceof SnapshotTooLargeError) return new ApiError('payload-too-large', err.message);
  if (err instanceof StoreLimitError) return new ApiError('payload-too-large', `nothing was written: ${err.message}`);
  // The store's own words say which store, why, and whether a write may have been made.
  if (err instanceof StoreUnavailableError) return new ApiError('unavailable', `the config store is unavailable: ${err.message}`);
  // The operator's own store, hand-edited: the message names the keys to fix.
  if (err instanceof StoredConfigError) return new ApiError('internal', err.message);
  return new ApiError('internal', 'internal error');
}

/**
 * A refusal that rests on instances the registry may not know yet (the resync hold after a
 * start, Consul's catalog unread): a 503 to retry (Retry-After), not a 422 that reads as final.
 */
function notKnownYet(err: InstancesNotKnownError): ApiError {
  const seconds = Math.max(1, Math.ceil((err.gap.until - Date.now()) / 1000));
  return new ApiError('unavailable', `not known yet: ${err.gap.why}: ${err.message}`, err.problems, undefined, { 'retry-after': String(seconds) });
}

export function errorBody(err: ApiError): { error: { code: string; message: string; problems?: readonly string[] } } {
  return { error: { ...err.details, code: err.code, message: err.message, ...(err.problems ? { problems: err.problems } : {}) } };
}
