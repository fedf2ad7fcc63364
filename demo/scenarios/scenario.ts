/**
 * A scenario runs against a running demo, says what it does and what to watch, measures
 * what happens, and checks it: each check prints ✓ or ✗, and any ✗ makes
 * `skein demo scenario` exit 1. Ctrl-C stops it early; its cleanup (faults off, instances
 * back) still runs.
 */
import type { DemoClient } from './demo-client.js';

export interface ScenarioOptions {
  /** How long to hold each step so it shows on the dashboard and in `skein stat`. */
  readonly holdMs: number;
}

export interface ScenarioIo {
  /** What the scenario is doing now. */
  say(text: string): void;
  /** A measured figure, shown under the step. */
  show(text: string): void;
  /** An expectation: ✓ or ✗ (failed checks make the scenario fail). */
  check(ok: boolean, text: string): void;
  /** Waits `ms` (pacing for a human watching), or less if the scenario is interrupted. */
  hold(ms: number): Promise<void>;
  readonly signal: AbortSignal;
}

export interface Scenario {
  readonly name: string;
  /** One line for `skein demo scenario` without a name. */
  readonly summary: string;
  /** Where to look while it runs. */
  watch(demo: DemoClient): readonly string[];
  run(demo: DemoClient, io: ScenarioIo, options: ScenarioOptions): Promise<void>;
}

export class ScenarioInterrupted extends Error {
  override name = 'ScenarioInterrupted';
}

/** Throws if the scenario was interrupted (call between steps). */
export function checkpoint(io: ScenarioIo): void {
  if (io.signal.aborted) throw new ScenarioInterrupted('interrupted');
}

export function percent(part: number, whole: number): string {
  return whole === 0 ? '-' : `${Math.round((100 * part) / whole)}%`;
}
