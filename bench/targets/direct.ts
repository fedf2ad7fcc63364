/** (A) the upstream itself, no proxy: the baseline every added latency is measured against. */
import type { RunningUpstream } from '../lib/upstream-server.js';
import type { Target } from './target.js';

export function directTarget(upstream: RunningUpstream): Target {
  return { name: 'direct', label: '(A) direct', url: `http://127.0.0.1:${upstream.port}/`, proxies: [], children: [upstream.child], notes: [] };
}
