/**
 * `?force=true` on the config writes that can touch a running canary rollout (routes, split,
 * policy, apply; canary/conflicts.ts says what "touch" means): without it such a write is
 * refused (409, nothing written); with it, each rollout it touches is aborted first (the split
 * back to `from`=100, the state `aborted` with the write named as the reason, the control
 * plane's log saying so), then the write is judged again and made. The answer names the
 * rollouts it aborted in a `Skein-Canary-Aborted` header (and `abortedCanaries` in an apply's body).
 */
import type { CanaryConflict } from '../canary/conflicts.js';
import type { CanaryWriteMode } from '../state/mesh-config.js';
import { booleanParam } from './query-param.js';
import type { RequestContext } from './router.js';

/** What aborts a rollout for a forced write (the CanaryController). */
export interface CanaryAborter {
  abort(service: string, reason: string): Promise<unknown>;
}

export const FORCE_QUERY = { name: 'force', description: 'true: abort a running canary rollout of the service that this write would touch (else 409), then write' } as const;

/**
 * `?force=true` (or 1, or empty); absent, false or 0 is no force; anything else is a 400, not a
 * silent no, and so is `force` given twice (`?force=true&force=false`), neither value taken.
 */
export function forceRequested(query: URLSearchParams): boolean {
  return booleanParam(query, 'force');
}

/** The canary mode of a write from its request, and the rollouts it aborted once made. */
export function canaryMode(ctx: RequestContext, canaries: CanaryAborter | undefined): { mode: CanaryWriteMode; aborted: string[]; headers: () => Record<string, string> } {
  const aborted: string[] = [];
  const force = forceRequested(ctx.query);
  const write = `${ctx.req.method ?? 'PUT'} ${ctx.req.url ?? ''}`;
  const mode: CanaryWriteMode = !force || !canaries ? {} : {
    force: async (conflicts: readonly CanaryConflict[]) => {
      for (const c of conflicts) {
        const where = c.where ? `: ${c.where.join(', ')}` : '';
        await canaries.abort(c.canary.service, `aborted by a forced write (${write}${where}) that changes ${c.changes.join(' and ')}`);
        if (!aborted.includes(c.canary.service)) aborted.push(c.canary.service);
      }
    },
  };
  return { mode, aborted, headers: (): Record<string, string> => (aborted.length > 0 ? { 'skein-canary-aborted': aborted.join(', ') } : {}) };
}
