/**
 * The catalogue of reasons a sidecar answers a request itself (SPEC §6 `x-skein-reason`),
 * with the HTTP status and gRPC status each maps to. Every sidecar-made response comes
 * from one of these; the test in errors.test.ts keeps the README table in step.
 */
export const REASONS = {
  'no-route': { status: 404, grpc: 12 /* UNIMPLEMENTED */, message: 'no route to the requested service' },
  'no-healthy-endpoints': { status: 503, grpc: 14 /* UNAVAILABLE */, message: 'no healthy endpoint for the destination' },
  'circuit-open': { status: 503, grpc: 14, message: 'circuit breaker is open for the destination' },
  timeout: { status: 504, grpc: 4 /* DEADLINE_EXCEEDED */, message: 'request timed out' },
  'retries-exhausted': { status: 503, grpc: 14, message: 'all attempts failed' },
  denied: { status: 403, grpc: 7 /* PERMISSION_DENIED */, message: 'denied by intentions' },
  'fault-injected': { status: 503, grpc: 14, message: 'fault injected by route config' },
  'upstream-connect-failure': { status: 503, grpc: 14, message: 'could not connect to the upstream' },
  'bad-request': { status: 400, grpc: 13 /* INTERNAL */, message: 'malformed request' },
} as const;

export type Reason = keyof typeof REASONS;

/** An error that ends a request with a sidecar-made response. */
export class SkeinError extends Error {
  readonly reason: Reason;
  readonly status: number;

  constructor(reason: Reason, message?: string, status?: number) {
    super(message ?? REASONS[reason].message);
    this.name = 'SkeinError';
    this.reason = reason;
    this.status = status ?? REASONS[reason].status;
  }

  get grpcStatus(): number {
    return REASONS[this.reason].grpc;
  }
}

export function isSkeinError(err: unknown): err is SkeinError {
  return err instanceof SkeinError;
}
