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
import { afterWrite } from './conditions.js';
import { ApiError } from './errors.js';
import type { Router } from './router.js';

export interface ApplyRouteDeps {
  readonly config: MeshConfig;
  readonly publisher: SnapshotPublisher;
}

/** One written document in the answer: `{kind, name?, key, revision}` (intentions have no name). */
function written(document: ApplyDocument, revision: number): Record<string, unknown> {
  return { kind: document.kind, ...(document.service ? { name: document.service } : {}), key: document.key, revision };
}

export function registerApplyRoutes(router: Router, { config, publisher }: ApplyRouteDeps): void {
  router
    .add({
      method: 'POST',
      path: '/api/v1/apply',
      summary:
        'Apply a whole file ({services, routes, intentions}): judged by the state it leaves behind, then written all at once (one store transaction, one snapshot); ' +
        'answers {applied: [{kind, name, key, revision}], snapshotVersion, published} (published: false with a warning, and a Warning header, when the stored config cannot be composed: stored, sidecars keep snapshotVersion); 422 lists every problem by its place in the file and writes nothing',
      auth: true,
      requestBody: applyDocuments,
      handler: async (ctx) => {
        const applied = await config.apply(await ctx.body()).catch((err: unknown) => {
          // Judged again on every change it met; only a mesh that never held still gets here.
          if (err instanceof StoreConflictError) throw new ApiError('precondition-failed', `${err.key} kept changing while the file was applied; nothing was written: apply it again`);
          throw err;
        });
        const after = await afterWrite(publisher);
        return {
          body: { applied: applied.map(({ document, entry }) => written(document, entry.revision)), snapshotVersion: after.version, ...after.fields },
          headers: after.headers,
        };
      },
    })
    .add({
      method: 'POST',
      path: '/api/v1/apply/check',
      summary: 'Judge a whole apply file as POST /api/v1/apply does, writing nothing; 422 lists every problem by its place in the file',
      auth: true,
      requestBody: applyDocuments,
      handler: async (ctx) => {
        await config.checkApply(await ctx.body());
        return { body: { ok: true } };
      },
    });
}
