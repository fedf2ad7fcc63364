/**
 * What a data-plane benchmark drives: a URL (plus the Host header to send) and the proxy
 * processes whose memory and CPU it reports. A target is started by its own module
 * (direct.ts, nginx-pair.ts, skein-pair.ts) and stopped with the benchmark's children.
 */
import { request } from 'undici';
import { waitUntil } from '../../test/support/wait.js';
import type { Child } from '../lib/children.js';

export type TargetName = 'direct' | 'nginx' | 'skein' | 'node-pipe';

export interface ProxyProcess {
  /** e.g. "outbound", "inbound" */
  readonly role: string;
  /** The pids to measure, read when measurement starts (nginx workers, not their master). */
  pids(): number[];
}

export interface Target {
  readonly name: TargetName;
  /** The row label in the results table, e.g. "(B) nginx pair". */
  readonly label: string;
  readonly url: string;
  readonly host?: string;
  readonly proxies: readonly ProxyProcess[];
  /** The processes behind it, to fail fast (with their output) if one dies while we wait. */
  readonly children: readonly Child[];
  /** Versions and settings worth printing under the table. */
  readonly notes: readonly string[];
  /**
   * Starts counting what the proxies themselves report (e.g. requests per subset); the
   * returned function describes what they counted since, to show under the table.
   */
  observe?(): Promise<() => Promise<string>>;
}

/** Resolves once `target` answers 200; fails early, with its processes' output, if one of them exits. */
export async function waitForTarget(target: Target): Promise<void> {
  try {
    await waitUntil(
      async () => {
        const dead = target.children.find((c) => c.hasExited);
        if (dead) throw new Error(`${dead.name} exited`);
        const res = await request(target.url, { headers: target.host ? { host: target.host } : {} });
        await res.body.dump();
        return res.statusCode === 200;
      },
      { timeoutMs: 30_000, intervalMs: 100, what: `${target.label} at ${target.url} to answer 200` },
    );
  } catch (err) {
    const outputs = target.children.map((c) => `--- ${c.name} (pid ${c.pid}) ---\n${c.output().trim()}`).join('\n');
    throw new Error(`${(err as Error).message}\n${outputs}`);
  }
}
