/**
 * `skein sidecar --wait-ready [-- COMMAND...]`: lets an app's start script wait until its
 * sidecar can carry the app's outbound calls, as linkerd-await or `pilot-agent wait` do.
 * It polls the admin port's `/ready/outbound` (config and certificates in hand), not `/ready`:
 * `/ready` also waits for a healthy app, which is the very process still waiting to start.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { request } from 'undici';

const POLL_MS = 100;
const ANSWER_TIMEOUT_MS = 1_000;

/** Resolves once the sidecar on 127.0.0.1:adminPort answers 200 on /ready/outbound; rejects after `timeoutMs` naming its last answer. */
export async function waitReady(adminPort: number, timeoutMs: number): Promise<void> {
  const url = `http://127.0.0.1:${adminPort}/ready/outbound`;
  const deadline = performance.now() + timeoutMs;
  let last = 'no answer yet';
  for (;;) {
    try {
      // undici's request, not fetch: fetch refuses some ports outright (10080, 6000, ...).
      const res = await request(url, { headersTimeout: ANSWER_TIMEOUT_MS, bodyTimeout: ANSWER_TIMEOUT_MS });
      const body = (await res.body.text()).trim();
      if (res.statusCode === 200) return;
      last = `${res.statusCode}: ${body.replace(/\n/g, ' ')}`;
    } catch (err) {
      last = (err as { code?: string }).code ?? (err as Error).message;
    }
    if (performance.now() + POLL_MS > deadline) throw new Error(`the sidecar's admin port ${url} was not ready within ${timeoutMs} ms (last: ${last})`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/** Runs `command` with this process's stdio, forwarding SIGTERM, SIGINT and SIGHUP; resolves with its exit code (128 + signal number when killed). */
export function runCommand(command: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0]!, command.slice(1), { stdio: 'inherit' });
    const forward = (signal: NodeJS.Signals): void => void child.kill(signal);
    const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
    for (const s of signals) process.on(s, forward);
    child.once('error', (err) => reject(new Error(`cannot run ${command[0]}: ${err.message}`)));
    child.once('exit', (code, signal) => {
      for (const s of signals) process.off(s, forward);
      resolve(code ?? 128 + (signal ? constants.signals[signal] : 0));
    });
  });
}
