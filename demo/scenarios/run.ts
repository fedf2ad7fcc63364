/** `skein demo scenario NAME`: finds the running demo through its state file and runs one scenario against it. */
import { DemoPaths } from '../options.js';
import { isAlive, readState, type DemoState } from '../state.js';
import { DemoClient } from './demo-client.js';
import { findScenario, SCENARIOS } from './index.js';
import { checkpoint, ScenarioInterrupted, type Scenario, type ScenarioIo } from './scenario.js';

export class NoDemoError extends Error {
  override name = 'NoDemoError';
}

export function runningDemo(dataDir: string): DemoState {
  const paths = new DemoPaths(dataDir);
  const state = readState(paths.stateFile);
  if (!state || !isAlive(state.pid)) {
    throw new NoDemoError(`no demo is running on ${paths.root} (start one with \`npx skein demo\`, or point at its data with --data-dir)`);
  }
  return state;
}

export function listScenarios(): string {
  const width = Math.max(...SCENARIOS.map((s) => s.name.length));
  return `${SCENARIOS.map((s) => `  ${s.name.padEnd(width)}  ${s.summary}`).join('\n')}\n`;
}

/** Runs it, printing as it goes; resolves with the number of failed checks (an interrupted run counts as one). */
export async function runScenario(name: string, options: { dataDir: string; holdMs: number; write: (text: string) => void }): Promise<number> {
  const scenario = findScenario(name);
  if (!scenario) throw new UnknownScenarioError(`no scenario "${name}"; there are:\n${listScenarios()}`);
  return executeScenario(scenario, new DemoClient(runningDemo(options.dataDir)), options);
}

export async function executeScenario(scenario: Scenario, demo: DemoClient, options: { holdMs: number; write: (text: string) => void }): Promise<number> {
  const { write } = options;
  const abort = new AbortController();
  const interrupt = () => {
    write('\ninterrupted: putting things back…\n');
    abort.abort();
  };
  process.once('SIGINT', interrupt);
  let failed = 0;
  const io: ScenarioIo = {
    signal: abort.signal,
    say: (text) => write(`\n▸ ${text}\n`),
    show: (text) => write(`    ${text}\n`),
    check: (ok, text) => {
      // What is measured after an interrupt is cut short (a hold ended early, a wait given up), so it proves nothing.
      checkpoint(io);
      if (!ok) failed++;
      write(`  ${ok ? '✓' : '✗'} ${text}\n`);
    },
    hold: (ms) =>
      new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          abort.signal.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, ms);
        abort.signal.addEventListener('abort', done, { once: true });
      }),
  };
  write(`scenario ${scenario.name}: ${scenario.summary}\nwatch:\n${scenario.watch(demo).map((w) => `  ${w}`).join('\n')}\n`);
  try {
    await scenario.run(demo, io, { holdMs: options.holdMs });
  } catch (err) {
    if (!(err instanceof ScenarioInterrupted)) throw err;
  } finally {
    process.off('SIGINT', interrupt);
  }
  if (abort.signal.aborted) {
    write(`\n■ scenario interrupted: things are put back; the checks after the interrupt were not run${failed ? ` (${failed} failed before it)` : ''}\n`);
    return failed + 1;
  }
  write(`\n${failed === 0 ? '✓ scenario done' : `✗ ${failed} check(s) failed`}\n`);
  return failed;
}

export class UnknownScenarioError extends Error {
  override name = 'UnknownScenarioError';
}
