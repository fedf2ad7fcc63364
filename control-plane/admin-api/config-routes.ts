/**
 * Admin API routes for the mesh config: service policies, route rules, canary splits and
 * intentions (SPEC §5). Every write answers once the snapshot that contains it is
 * published, with that version in `Skein-Snapshot-Version`, so a caller can wait for
 * proxies to reach it; when the stored config cannot be composed (another stored entry
 * refused), the write stays stored and the answer adds `Skein-Published: false` and a
 * `Warning: 299` header saying why.
 */
import type { MeshConfig } from '../state/mesh-config.js';
import { newIntentionsBody, policyBody, routesBody, splitBody } from '../state/resources.js';
import type { SnapshotPublisher } from '../state/snapshots.js';
import type { StoreEntry } from '../store/store.js';
import type { ResyncHold } from '../state/registry-gap.js';
import { afterWrite, entryHeaders, writeCondition } from './conditions.js';
import { ApiError } from './errors.js';
import { canaryMode, FORCE_QUERY, type CanaryAborter } from './force.js';
import type { ApiResponse, RequestContext, Router } from './router.js';
import { refusedHeaders } from './services-routes.js';

export interface ConfigRouteDeps {
  readonly config: MeshConfig;
  readonly publisher: SnapshotPublisher;
  /** Aborts the rollouts a forced write touches; without it `?force` aborts nothing. */
  readonly canaries?: CanaryAborter;
  /** The push server's resync hold, which answers made during it name. */
  readonly hold?: ResyncHold;
}

const FORCE = [FORCE_QUERY];

export function registerConfigRoutes(router: Router, { config, publisher, canaries, hold }: ConfigRouteDeps): void {
  const written = async (entry: StoreEntry, extra: Record<string, string> = {}): Promise<ApiResponse> => {
    const after = await afterWrite(publisher, hold);
    return { body: entry.value, headers: { ...entryHeaders(entry), ...after.headers, ...extra } };
  };
  const deleted = async (existed: boolean, what: string, extra: Record<string, string> = {}): Promise<ApiResponse> => {
    if (!existed) throw new ApiError('not-found', `${what} does not exist`);
    return { status: 204, headers: { ...(await afterWrite(publisher, hold)).headers, ...extra } };
  };
  const found = (entry: StoreEntry | undefined, missing: string): ApiResponse => {
    if (!entry) throw new ApiError('not-found', missing);
    return { body: entry.value, headers: entryHeaders(entry) };
  };
  const condition = (ctx: RequestContext, read: () => Promise<StoreEntry | undefined>) =>
    writeCondition(ctx.req, async () => (await read())?.revision ?? 0);

  router
    .add({
      method: 'GET',
      path: '/api/v1/services/{name}/policy',
      summary: "A service's policy (protocol, lb, timeout, retries, circuit breaker, outlier detection, subsets)",
      auth: false,
      handler: async ({ params }) => found(await config.getPolicy(params.name!), `no policy stored for ${params.name} (defaults apply)`),
    })
    .add({
      method: 'PUT',
      path: '/api/v1/services/{name}/policy',
      summary: "Create or replace a service's policy; 409 when it changes the selector of a subset a running canary rollout uses, unless ?force=true (which aborts the rollout first)",
      auth: true,
      requestBody: policyBody,
      query: FORCE,
      handler: async (ctx) => {
        const name = ctx.params.name!;
        const { mode, headers } = canaryMode(ctx, canaries);
        const cond = await condition(ctx, () => config.getPolicy(name));
        return written(await config.putPolicy(name, await ctx.body(), cond, mode), headers());
      },
    })
    .add({
      method: 'DELETE',
      path: '/api/v1/services/{name}/policy',
      summary: "Delete a service's policy (defaults apply again); 409 as for a PUT when a running canary rollout's subsets would change, unless ?force=true",
      auth: true,
      success: 204,
      query: FORCE,
      handler: async (ctx) => {
        const name = ctx.params.name!;
        const { mode, headers } = canaryMode(ctx, canaries);
        const cond = await condition(ctx, () => config.getPolicy(name));
        return deleted(await config.deletePolicy(name, cond, mode), `the policy of ${name}`, headers());
      },
    })
    .add({
      method: 'GET',
      path: '/api/v1/routes',
      summary: 'Route rules of every service',
      auth: false,
      // Entries the schema refuses are left out and named in a Warning, as for GET /api/v1/services.
      handler: async () => {
        const { config: stored, refused } = await config.read();
        return { body: stored.routes, headers: refusedHeaders(config.location, refused) };
      },
    })
    .add({
      method: 'GET',
      path: '/api/v1/routes/{service}',
      summary: "A service's route rules (first match wins)",
      auth: false,
      handler: async ({ params }) => found(await config.getRoutes(params.service!), `no routes stored for ${params.service} (one catch-all rule over all endpoints applies)`),
    })
    .add({
      method: 'PUT',
      path: '/api/v1/routes/{service}',
      summary: "Create or replace a service's route rules; 409 when they change the routes of a service with a running canary rollout, unless ?force=true (which aborts the rollout first)",
      auth: true,
      requestBody: routesBody,
      query: FORCE,
      handler: async (ctx) => {
        const service = ctx.params.service!;
        const { mode, headers } = canaryMode(ctx, canaries);
        const cond = await condition(ctx, () => config.getRoutes(service));
        return written(await config.putRoutes(service, await ctx.body(), cond, mode), headers());
      },
    })
    .add({
      method: 'DELETE',
      path: '/api/v1/routes/{service}',
      summary: "Delete a service's route rules; 409 while a canary rollout of the service runs, unless ?force=true (which aborts it first)",
      auth: true,
      success: 204,
      query: FORCE,
      handler: async (ctx) => {
        const service = ctx.params.service!;
        const { mode, headers } = canaryMode(ctx, canaries);
        const cond = await condition(ctx, () => config.getRoutes(service));
        return deleted(await config.deleteRoutes(service, cond, mode), `the routes of ${service}`, headers());
      },
    })
    .add({
      method: 'PUT',
      path: '/api/v1/routes/{service}/split',
      summary: "Set the weights of the service's catch-all rule (the first rule every request matches; added last when it has none), e.g. {\"v1\": 90, \"v2\": 10}; answers the resulting rules; 409 when an earlier rule that needs no header would keep requests from it (naming it in shadowedBy), and when they change the split of a service with a running canary rollout, unless ?force=true (which aborts the rollout first)",
      auth: true,
      requestBody: splitBody,
      query: FORCE,
      handler: async (ctx) => {
        const service = ctx.params.service!;
        const { mode, headers } = canaryMode(ctx, canaries);
        const cond = await condition(ctx, () => config.getRoutes(service));
        return written(await config.setSplit(service, await ctx.body(), cond, mode), headers());
      },
    })
    .add({
      method: 'GET',
      path: '/api/v1/intentions',
      summary: 'Default action and service-to-service rules',
      auth: false,
      handler: async () => found(await config.getIntentions(), 'no intentions configured: every caller is allowed'),
    })
    .add({
      method: 'PUT',
      path: '/api/v1/intentions',
      summary: 'Replace the default action and rules; a rule that never decides (an earlier rule matches every call it would) is refused',
      auth: true,
      requestBody: newIntentionsBody,
      handler: async (ctx) => {
        const cond = await condition(ctx, () => config.getIntentions());
        return written(await config.putIntentions(await ctx.body(), cond));
      },
    });
}

