/**
 * `SKEIN_OTLP_ENDPOINT` → the URL spans are posted to. Checked once, when the sidecar starts:
 * undici throws synchronously on a URL it cannot use, and the exporter's first post runs from
 * a timer a second after the first request, where that throw would end the process.
 */

/** An endpoint the exporter could not post to; `reason` says why. */
export class OtlpEndpointError extends Error {
  override name = 'OtlpEndpointError';

  constructor(
    readonly endpoint: string,
    readonly reason: string,
  ) {
    super(`${JSON.stringify(endpoint)} ${reason}`);
  }
}

const EXAMPLE = '(use e.g. http://127.0.0.1:4318)';

/**
 * `http://collector:4318` → `http://collector:4318/v1/traces`; a URL already ending in
 * /v1/traces is kept. Anything but an http:// or https:// URL with a host and no query or
 * fragment (after which /v1/traces could not go) throws OtlpEndpointError.
 */
export function tracesUrl(endpoint: string): string {
  // Scheme and "//" spelled out: URL alone reads `localhost:4318` as scheme `localhost:` and
  // forgives `http:/collector:4318`.
  if (!/^https?:\/\//i.test(endpoint)) throw new OtlpEndpointError(endpoint, `is not an http:// or https:// URL ${EXAMPLE}`);
  if (!URL.canParse(endpoint)) throw new OtlpEndpointError(endpoint, `is not a URL ${EXAMPLE}`);
  if (/[?#]/.test(endpoint)) throw new OtlpEndpointError(endpoint, 'has a query or fragment: the sidecar posts to <endpoint>/v1/traces');
  const base = endpoint.replace(/\/+$/, '');
  return base.endsWith('/v1/traces') ? base : `${base}/v1/traces`;
}
