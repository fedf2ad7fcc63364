/**
 * The gRPC status a call is counted under. gRPC defines codes 0 (OK) to 16
 * (UNAUTHENTICATED); a `grpc-status` that is none of them (`32`, `-1`, `abc`, empty), or none
 * at all on an answer that ended, is what a gRPC client reads as UNKNOWN (2): a failure, never
 * OK, and never a label value of its own.
 */

export const GRPC_UNKNOWN = 2;
/** Codes 0 to 16. */
export const GRPC_CODES = 17;

/**
 * gRPC's `1*DIGIT`, leading zeros too (`014` is 14, as grpc-go's ParseInt reads it); Number()
 * alone would read '' and ' 0' as 0, '0x1' as 1 and '1.0' as 1.
 */
const DIGITS = /^\d+$/;

/** `value` (a grpc-status header, or a code) as a code 0–16; anything else is UNKNOWN. */
export function grpcStatusCode(value: string | number): number {
  const code = typeof value === 'string' ? (DIGITS.test(value) ? Number(value) : -1) : value;
  return Number.isInteger(code) && code >= 0 && code < GRPC_CODES ? code : GRPC_UNKNOWN;
}

/**
 * The code a gRPC client reads from an answer without `grpc-status`, by its HTTP status
 * (gRPC's http-grpc-status-mapping, as grpc-js and grpc-go apply it): an app or proxy that
 * answered a gRPC call with a plain `503` failed it UNAVAILABLE to its caller, so it is counted
 * so too. A `200` that ended without a status is UNKNOWN.
 */
export function grpcStatusOfHttp(status: number): number {
  switch (status) {
    case 400:
      return 13; // INTERNAL
    case 401:
      return 16; // UNAUTHENTICATED
    case 403:
      return 7; // PERMISSION_DENIED
    case 404:
      return 12; // UNIMPLEMENTED
    case 429:
    case 502:
    case 503:
    case 504:
      return 14; // UNAVAILABLE
    default:
      return GRPC_UNKNOWN;
  }
}
