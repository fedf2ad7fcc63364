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

/** The request a fault runs on (the Exchange): an object, so a fault makes no closures per request. */
export interface FaultTarget {
  /** No abort: the request goes on. */
  faultPassed(): void;
  replyError(err: SkeinError): void;
}

/**
 * Runs the fault for one request: calls exactly one of `faultPassed` or `replyError`,
 * possibly after the delay. Returns the delay timer, or undefined.
 */
export type FaultStage = (target: FaultTarget) => NodeJS.Timeout | undefined;

export function compileFault(fault: Fault | undefined, random: () => number = Math.random): FaultStage | null {
  const delayPercent = fault?.delay && fault.delay.duration > 0 ? fault.delay.percent : 0;
  const delayMs = fault?.delay?.duration ?? 0;
  const abortPercent = fault?.abort?.percent ?? 0;
  if (delayPercent <= 0 && abortPercent <= 0) return null;
  // One error per rule, reused: it carries no per-request data.
  const error = new SkeinError('fault-injected', undefined, fault?.abort?.status);

  const decideAbort = (target: FaultTarget): void => {
    if (abortPercent > 0 && random() * 100 < abortPercent) target.replyError(error);
    else target.faultPassed();
  };

  return (target) => {
    if (delayPercent > 0 && random() * 100 < delayPercent) {
      return setTimeout(decideAbort, delayMs, target);
    }
    decideAbort(target);
    return undefined;
  };
}
