/** `skein demo stop`: asks the running demo to stop in order, and waits until its orchestrator has exited. */
import { runningDemo } from './scenarios/run.js';
import { isAlive } from './state.js';
import { waitFor } from './wait.js';

export async function stopDemo(dataDir: string, write: (text: string) => void): Promise<void> {
  const state = runningDemo(dataDir);
  const res = await fetch(`${state.controlUrl}/stop`, { method: 'POST', headers: { authorization: `Bearer ${state.adminToken}` } });
  if (res.status !== 202) throw new Error(`the demo refused to stop: ${res.status} ${await res.text()}`);
  write(`stopping the demo (pid ${state.pid})…\n`);
  await waitFor(() => !isAlive(state.pid), { timeoutMs: 60_000, what: `the demo (pid ${state.pid}) to exit`, intervalMs: 200 });
  write('stopped\n');
}
