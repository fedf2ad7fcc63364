/** The scenarios `skein demo scenario NAME` can run, in the order they are listed. */
import { affinity } from './affinity.js';
import { blueGreen } from './blue-green.js';
import { canary } from './canary.js';
import { killInstance } from './kill-instance.js';
import { notificationsDown } from './notifications-down.js';
import { paymentsOutage } from './payments-outage.js';
import type { Scenario } from './scenario.js';

export const SCENARIOS: readonly Scenario[] = [canary, blueGreen, affinity, paymentsOutage, killInstance, notificationsDown];

export const SCENARIO_NAMES = SCENARIOS.map((s) => s.name);

export function findScenario(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name);
}
