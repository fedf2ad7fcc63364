/**
 * Keeps the control plane told whether this sidecar is ready (what `/ready` says: config and
 * certificates in hand, the app healthy, not draining). With Consul, Consul's check on
 * `/ready` carries that verdict to discovery; in the built-in registry it goes up the push
 * stream, so a draining instance or one whose app fails its health check stops being an
 * endpoint, as it would under Consul. Checked at the app health check's pace; the source
 * sends only changes.
 */
const CHECK_MS = 1000;

/** Starts reporting; returns a function that checks (and reports a change) at once, for a drain. */
export function reportReadiness(notReady: () => string[], report: (reasons: readonly string[]) => void, intervalMs = CHECK_MS): () => void {
  const check = (): void => report(notReady());
  check();
  setInterval(check, intervalMs).unref();
  return check;
}
