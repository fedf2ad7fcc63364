/**
 * The one error type demo services answer with: an HTTP status, a stable machine code and a
 * sentence a person can act on. Every error body is `{ "error": { "code", "message" } }`,
 * the same shape as the control plane's admin API.
 */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    /** Header lines the answer carries beside the body (a 429's Retry-After). */
    readonly headers?: Readonly<Record<string, string>>,
  ) {
    super(message);
    this.name = 'HttpError';
  }

  toBody(): { error: { code: string; message: string; details?: unknown } } {
    return { error: { code: this.code, message: this.message, ...(this.details === undefined ? {} : { details: this.details }) } };
  }
}

/** A call to another service failed before it produced an answer we understand. */
export class UpstreamError extends HttpError {
  constructor(
    service: string,
    detail: string,
    status = 503,
    /** The connection was refused: the request never left this process, so it cannot have taken effect. */
    readonly notSent = false,
  ) {
    super(status, 'upstream-unavailable', `${service} is unavailable: ${detail}`);
    this.name = 'UpstreamError';
  }
}
