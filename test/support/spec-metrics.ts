/**
 * The metric names of SPEC §7, written out from the contract rather than read from the
 * implementation, so a renamed or missing series fails the tests that check them.
 */
export const SPEC_METRICS: readonly string[] = [
  'skein_requests_total',
  'skein_request_duration_seconds',
  'skein_retries_total',
  'skein_retry_budget_exhausted_total',
  'skein_circuit_state',
  'skein_circuit_rejections_total',
  'skein_outlier_ejections_total',
  'skein_endpoints',
  'skein_authz_denied_total',
  'skein_tls_handshake_failures_total',
  'skein_config_updates_total',
  'skein_cert_expiry_timestamp_seconds',
];
