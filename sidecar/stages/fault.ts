/**
 * Fault injection of a route rule (SPEC §4 `fault`, Envoy's/Istio's HTTP fault filter): delay
 * a percentage of requests by a fixed duration, abort a percentage with a status of the
 * rule's choosing. Delay comes first, then the abort decision, each drawn independently.
 * Aborted requests are answered by the sidecar with `x-skein-reason: fault-injected`.
 *
 * Compiled per rule when a snapshot arrives; a rule without an active fault compiles to
 * null, so the request path pays nothing for the feature when it is off.
 */
import type { Fault } from '../../common/config/schema.js';
import { SkeinError } from '../../common/errors.js';

/**
 * Runs the fault for one request: calls exactly one of `proceed` or `abort`, possibly after
 * the delay. Returns the delay timer (to clear if the client leaves), or undefined.
 */
export type FaultStage = (proceed: () => void, abort: (err: SkeinError) => void) => NodeJS.Timeout | undefined;

export function compileFault(fault: Fault | undefined, random: () => number = Math.random): FaultStage | null {
  const delayPercent = fault?.delay && fault.delay.duration > 0 ? fault.delay.percent : 0;
  const delayMs = fault?.delay?.duration ?? 0;
  const abortPercent = fault?.abort?.percent ?? 0;
  if (delayPercent <= 0 && abortPercent <= 0) return null;
  // One error per rule, reused: it carries no per-request data.
  const error = new SkeinError('fault-injected', undefined, fault?.abort?.status);

  const decideAbort = (proceed: () => void, abort: (err: SkeinError) => void): void => {
    if (abortPercent > 0 && random() * 100 < abortPercent) abort(error);
    else proceed();
  };

  return (proceed, abort) => {
    if (delayPercent > 0 && random() * 100 < delayPercent) {
      return setTimeout(decideAbort, delayMs, proceed, abort);
    }
    decideAbort(proceed, abort);
    return undefined;
  };
}
