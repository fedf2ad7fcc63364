/**
 * A malformed HTTP/1.x message; `code` is llhttp's name for the fault (what node:http
 * reported), or `ERR_SKEIN_*` for checks llhttp does not make, for logs and replies.
 */
export class HttpParseError extends Error {
  override name = 'HttpParseError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
