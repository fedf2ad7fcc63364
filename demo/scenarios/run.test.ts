import { describe, expect, it } from 'vitest';
import type { DemoClient } from './demo-client.js';
import { waitFor } from '../wait.js';
import { executeScenario } from './run.js';
import type { Scenario } from './scenario.js';

/** Like payments-outage: a fault, a long hold, the fault put back, then checks of the outcome. */
function outage(log: string[]): Scenario {
  return {
    name: 'fake-outage',
    summary: 'a fault, held, then put back and checked',
    watch: () => [],
    async run(_demo, io) {
      io.check(true, 'fault injected');
      try {
        io.say('holding');
        await io.hold(60_000);
      } finally {
        log.push('put back');
      }
      io.check(false, 'stock released for 1/12');
    },
  };
}

// The scenarios here never call the demo.
const noDemo = {} as DemoClient;

describe('executeScenario', () => {
  it('on Ctrl-C puts things back, says it was interrupted and runs no further checks', async () => {
    const log: string[] = [];
    let output = '';
    const listeners = process.listenerCount('SIGINT');
    const result = executeScenario(outage(log), noDemo, { holdMs: 0, write: (t) => (output += t) });
    await waitFor(() => output.includes('▸ holding'), { timeoutMs: 5_000, intervalMs: 10, what: 'the scenario to hold' });
    process.emit('SIGINT');
    expect(await result).toBe(1);
    expect(log).toEqual(['put back']);
    expect(output).toContain('✓ fault injected');
    expect(output).not.toContain('✗');
    expect(output).toContain('■ scenario interrupted: things are put back; the checks after the interrupt were not run');
    expect(process.listenerCount('SIGINT')).toBe(listeners);
  });

  it('runs every check when not interrupted', async () => {
    let output = '';
    const scenario: Scenario = { ...outage([]), run: async (_demo, io) => io.check(false, 'a failing check') };
    expect(await executeScenario(scenario, noDemo, { holdMs: 0, write: (t) => (output += t) })).toBe(1);
    expect(output).toContain('✗ a failing check');
    expect(output).toContain('✗ 1 check(s) failed');
  });
});
