/**
 * `POST /api/v1/apply`: a whole `skein apply` file (`{services, routes, intentions}`) judged
 * by the state it leaves behind and written in one store transaction, so no other writer or
 * replica sees half of it and sidecars get one snapshot with all of it. A route must name
 * only subsets the policy in force after the file declares; a policy may drop a subset no
 * route left in place uses (MeshConfig.checkApply). `POST /api/v1/apply/check` is the same
 * judgement with nothing written. A 422 lists every problem by its place in the file, e.g.
 * `routes.catalog[0].split.v9: unknown subset "v9" of catalog: …`. A file written while the
 * stored config cannot be composed (another stored entry refused) stays written, and the
 * answer says it is not published (`published: false`, `warning`, a `Warning` header).
 */
import type { ApplyDocument, MeshConfig } from '../state/mesh-config.js';
import { applyDocuments } from '../state/resources.js';
import type { SnapshotPublisher } from '../state/snapshots.js';
import { StoreConflictError } from '../store/store.js';
import type { ResyncHold } from '../state/registry-gap.js';
import { afterWrite } from './conditions.js';
import { ApiError } from './errors.js';
import { canaryMode, FORCE_QUERY, forceRequested, type CanaryAborter } from './force.js';
import { RunningCanaryError } from '../canary/conflicts.js';
import type { Router } from './router.js';

export interface ApplyRouteDeps {
  readonly config: MeshConfig;
  readonly publisher: SnapshotPublisher;
  /** Aborts the rollouts a forced apply touches; without it `?force` aborts nothing. */
  readonly canaries?: CanaryAborter;
  /** The push server's resync hold, which answers made during it name. */
  readonly hold?: ResyncHold;
}

/** One written document in the answer: `{kind, name?, key, revision}` (intentions have no name). */
function written(document: ApplyDocument, revision: number): Record<string, unknown> {
  return { kind: document.kind, ...(document.service ? { name: document.service } : {}), key: document.key, revision };
}

export function registerApplyRoutes(router: Router, { config, publisher, canaries, hold }: ApplyRouteDeps): void {
  router
    .add({
      method: 'POST',
      path: '/api/v1/apply',
      summary:
        'Apply a whole file ({services, routes, intentions}): judged by the state it leaves behind, then written all at once (one store transaction, one snapshot); ' +
        'answers {applied: [{kind, name, key, revision}], snapshotVersion, published} (published: false with a warning, and a Warning header, when the stored config cannot be composed: stored, sidecars keep snapshotVersion; heldUntil with a warning during the resync hold after a start); 422 lists every problem by its place in the file and writes nothing; ' +
        '409 (nothing written) when it would change the routes, or the subsets in use, of a service with a running canary rollout, unless ?force=true, which aborts those rollouts first (abortedCanaries in the answer)',
      auth: true,
      requestBody: applyDocuments,
      query: [FORCE_QUERY],
      handler: async (ctx) => {
        const { mode, aborted, headers } = canaryMode(ctx, canaries);
        const applied = await config.apply(await ctx.body(), mode).catch((err: unknown) => {
          // Judged again on every change it met; only a mesh that never held still gets here.
          if (err instanceof StoreConflictError) throw new ApiError('precondition-failed', `${err.key} kept changing while the file was applied; nothing was written: apply it again`);
          throw err;
        });
        const after = await afterWrite(publisher, hold);
        return {
          body: {
            applied: applied.map(({ document, entry }) => written(document, entry.revision)),
            snapshotVersion: after.version,
            ...after.fields,
            ...(aborted.length > 0 ? { abortedCanaries: aborted } : {}),
          },
          headers: { ...after.headers, ...headers() },
        };
      },
    })
    .add({
      method: 'POST',
      path: '/api/v1/apply/check',
      summary: 'Judge a whole apply file as POST /api/v1/apply does, writing nothing; 422 lists every problem by its place in the file; 409 when it would touch a running canary rollout (with ?force=true: ok, naming the rollouts it would abort in wouldAbortCanaries)',
      auth: true,
      requestBody: applyDocuments,
      query: [FORCE_QUERY],
      handler: async (ctx) => {
        const force = forceRequested(ctx.query);
        const plan = await config.checkApply(await ctx.body());
        if (plan.conflicts.length > 0 && !force) throw new RunningCanaryError(plan.conflicts);
        return { body: { ok: true, ...(plan.conflicts.length > 0 ? { wouldAbortCanaries: plan.conflicts.map((c) => c.canary.service) } : {}) } };
      },
    });
}
