/**
 * `skein demo stop`: asks the running demo to stop in order, and waits until its orchestrator
 * has exited; one still starting (no demo.json yet) gets SIGTERM, as from Ctrl-C. When the
 * orchestrator is gone (`kill -9`, a crash) but processes it started still run (holding the
 * shop's ports), it stops those, as the next `skein demo` would.
 */
import { DemoPaths } from './options.js';
import { cleanLeftovers, PidFile } from './pid-file.js';
import { runningDemo } from './scenarios/run.js';
import { isAlive, readState, removeState } from './state.js';
import { waitFor } from './wait.js';

export async function stopDemo(dataDir: string, write: (text: string) => void): Promise<void> {
  const paths = new DemoPaths(dataDir);
  const recorded = readState(paths.stateFile);
  if (!recorded || !isAlive(recorded.pid)) {
    const pidFile = new PidFile(paths.pidFile);
    const leftovers = await cleanLeftovers(pidFile, paths.root);
    if (leftovers.runningDemo) {
      // Still starting: demo.json, which names its control endpoint, comes once the control
      // plane is up. SIGTERM stops it in order, as Ctrl-C in its terminal does.
      const pid = leftovers.runningDemo;
      process.kill(pid, 'SIGTERM');
      write(`stopping the demo (pid ${pid}), which was still starting…\n`);
      await waitFor(() => !isAlive(pid), { timeoutMs: 60_000, what: `the demo (pid ${pid}) to exit`, intervalMs: 200 });
      write('stopped\n');
      return;
    }
    if (leftovers.killed.length > 0) {
      pidFile.remove();
      removeState(paths.stateFile);
      write(`the demo on ${paths.root} did not stop cleanly (its orchestrator is gone): stopped the ${leftovers.killed.length} processes it left behind\n`);
      return;
    }
  }
  const state = runningDemo(dataDir);
  const res = await fetch(`${state.controlUrl}/stop`, { method: 'POST', headers: { authorization: `Bearer ${state.adminToken}` } });
  if (res.status !== 202) throw new Error(`the demo refused to stop: ${res.status} ${await res.text()}`);
  write(`stopping the demo (pid ${state.pid})…\n`);
  await waitFor(() => !isAlive(state.pid), { timeoutMs: 60_000, what: `the demo (pid ${state.pid}) to exit`, intervalMs: 200 });
  write('stopped\n');
}
