/**
 * What a data-plane benchmark drives: a URL (plus the Host header to send) and the proxy
 * processes whose memory and CPU it reports. A target is started by its own module
 * (direct.ts, nginx-pair.ts, skein-pair.ts) and stopped with the benchmark's children.
 */
import type { Child } from '../lib/children.js';

export type TargetName = 'direct' | 'nginx' | 'skein';

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
}
