/**
 * A request the control plane could not judge yet but may take in a moment (503 with
 * Retry-After: the resync hold after its start). It exits EXIT_TRY_AGAIN, not 1, so a script
 * can tell "retry" from "refused".
 */
export class TryAgainError extends Error {
  override name = 'TryAgainError';
}

/** EX_TEMPFAIL of sysexits.h: a temporary failure, the user is invited to retry. */
export const EXIT_TRY_AGAIN = 75;
