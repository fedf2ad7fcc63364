/**
 * `skein demo` as a real process for end-to-end tests: free ports, a temp data dir, and a
 * cleanup that kills whatever the demo started even if the test failed halfway (the demo's
 * children run in their own process groups, so killing the `skein demo` process alone would
 * leave them running).
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cleanLeftovers, PidFile } from '../../demo/pid-file.js';
import { readState, type DemoState } from '../../demo/state.js';
import { tempDir, waitUntil, type Child, type Processes } from '../support/index.js';

export { isAlive } from '../../demo/state.js';

export interface DemoProcess {
  readonly child: Child;
  readonly dataDir: string;
  readonly state: DemoState;
}

export async function startDemo(procs: Processes, args: readonly string[] = []): Promise<DemoProcess> {
  const dataDir = tempDir('skein-demo-e2e-');
  const child = procs.skein('skein demo', ['demo', '--data-dir', dataDir, '--gateway-port', '0', '--control-plane-port', '0', ...args]);
  const isUp = (): boolean => child.output().includes('Skein demo is up');
  // A demo that gives up exits: stop waiting then, not at the deadline.
  await waitUntil(() => isUp() || child.hasExited, { timeoutMs: 240_000, intervalMs: 200, what: 'the demo to be up' }).catch((err: Error) => {
    throw new Error(`${err.message}\n--- skein demo output ---\n${child.output()}`);
  });
  if (!isUp()) throw new Error(`skein demo exited before it was up:\n${child.output()}`);
  const state = readState(join(dataDir, 'demo.json'));
  if (!state) throw new Error('the demo is up but wrote no demo.json');
  return { child, dataDir, state };
}

/** Every pid the demo recorded in demo.pids (the orchestrator first). */
export function recordedPids(dataDir: string): number[] {
  try {
    return readFileSync(join(dataDir, 'demo.pids'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => Number(line.split(' ')[0]));
  } catch {
    return [];
  }
}

/**
 * After the `skein demo` process itself is gone (killed by the test's Processes): kills
 * every process group it started and left behind, then removes its data.
 */
export async function destroyDemo(dataDir: string): Promise<void> {
  await cleanLeftovers(new PidFile(join(dataDir, 'demo.pids')), dataDir);
  // SKEIN_TEST_KEEP=1 keeps the logs of a failed run to look at.
  if (process.env.SKEIN_TEST_KEEP) process.stderr.write(`demo data and logs kept in ${dataDir}\n`);
  else rmSync(dataDir, { recursive: true, force: true });
}
