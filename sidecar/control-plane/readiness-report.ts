/**
 * Keeps the control plane told whether this sidecar is ready (what `/ready` says: config and
 * certificates in hand, the app healthy, not draining). With Consul, Consul's check on
 * `/ready` carries that verdict to discovery; in the built-in registry it goes up the push
 * stream, so a draining instance or one whose app fails its health check stops being an
 * endpoint, as it would under Consul. Checked at the app health check's pace; the source
 * sends only changes.
 */
const CHECK_MS = 1000;

export interface ReadinessReporter {
  /**
   * Checks at once and reports a change (a drain calls it, so the control plane hears without
   * waiting; so does a certificate renewal). Does nothing once stopped.
   */
  check(): void;
  /**
   * Stops the checks for good (on shutdown, before the push stream closes): the periodic ones,
   * and `check()` from callers still holding it (an identity renewal during the drain);
   * calling it again does nothing.
   */
  stop(): void;
}

/** Reports readiness now, then every `intervalMs` until stopped. */
export function reportReadiness(notReady: () => string[], report: (reasons: readonly string[]) => void, intervalMs = CHECK_MS): ReadinessReporter {
  let stopped = false;
  const check = (): void => {
    if (!stopped) report(notReady());
  };
  check();
  const timer = setInterval(check, intervalMs);
  timer.unref();
  return {
    check,
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
  };
}
