/**
 * `GET /api/v1/services`: every service the mesh knows (from stored config or discovery),
 * with its instances and health, and its subsets with how many instances each selects.
 * A stored entry its schema refuses (a hand-edited store.json entry or Consul KV pair) does
 * not fail the listing: the service is listed without it, naming it in `problems`, and a
 * `Warning: 299` header names every such entry, as a write's answer names the one that keeps
 * it from being published.
 */
import type { Discovery, Instance } from '../registry/discovery.js';
import type { MeshConfig, RefusedEntry } from '../state/mesh-config.js';
import type { StoredConfig } from '../state/resources.js';
import { StoredConfigError } from '../store/stored-entries.js';
import { ownEntry } from '../../common/config/own.js';
import { warningHeader } from './conditions.js';
import { ApiError } from './errors.js';
import type { Router } from './router.js';

export interface ServiceView {
  name: string;
  protocol: string;
  instances: { id: string; address: string; port: number; version: string; labels: Record<string, string>; health: string }[];
  subsets: { name: string; labels: Record<string, string>; declared: boolean; instances: number }[];
  hasPolicy: boolean;
  hasRoutes: boolean;
  /** Why its stored policy or routes are not in force (each `key: problem`); absent when they are. */
  problems?: string[];
}

/** The services of the stored config's good entries and of `instances`, and of the `refused` entries, which each names in `problems`. */
export function serviceViews(config: StoredConfig, instances: readonly Instance[], refused: readonly RefusedEntry[] = []): ServiceView[] {
  const refusedOf = new Map<string, string[]>();
  for (const entry of refused) {
    const name = /^(?:policies|routes)\/(.+)$/.exec(entry.key)?.[1];
    if (name !== undefined) refusedOf.set(name, [...(refusedOf.get(name) ?? []), ...entry.problems]);
  }
  const names = new Set([...Object.keys(config.policies), ...Object.keys(config.routes), ...instances.map((i) => i.service), ...refusedOf.keys()]);
  return [...names].sort().map((name) => {
    const own = instances.filter((i) => i.service === name);
    const policy = ownEntry(config.policies, name);
    const declared = Object.entries(policy?.subsets ?? {});
    const implicit = [...new Set(own.map((i) => i.labels.version).filter((v): v is string => !!v))]
      .filter((version) => !declared.some(([subset]) => subset === version))
      .map((version): [string, Record<string, string>] => [version, { version }]);
    const selects = (labels: Record<string, string>) => own.filter((i) => Object.entries(labels).every(([k, v]) => i.labels[k] === v)).length;
    return {
      name,
      protocol: policy?.protocol ?? own[0]?.protocol ?? 'http',
      instances: own.map((i) => ({ id: i.id, address: i.address, port: i.port, version: i.labels.version ?? '', labels: { ...i.labels }, health: i.health })),
      subsets: [
        ...declared.map(([subset, labels]) => ({ name: subset, labels, declared: true, instances: selects(labels) })),
        ...implicit.map(([subset, labels]) => ({ name: subset, labels, declared: false, instances: selects(labels) })),
      ],
      hasPolicy: policy !== undefined,
      hasRoutes: ownEntry(config.routes, name) !== undefined,
      ...(refusedOf.has(name) ? { problems: refusedOf.get(name) } : {}),
    };
  });
}

/** Where the names of services come from: stored policies and routes, and discovered instances. */
export interface ServiceSources {
  readonly config: MeshConfig;
  readonly discovery: Discovery;
}

/** Every service, and the `Warning` header naming the stored entries refused, if any. */
async function listed(deps: ServiceSources): Promise<{ views: ServiceView[]; headers: Record<string, string> }> {
  const { config, refused } = await deps.config.read();
  return { views: serviceViews(config, deps.discovery.instances(), refused), headers: refusedHeaders(deps.config.location, refused) };
}

/** For an answer made from the stored entries that pass their schema: a `Warning: 299` naming each one left out, none when none was. */
export function refusedHeaders(location: string, refused: readonly RefusedEntry[]): Record<string, string> {
  if (refused.length === 0) return {};
  return { warning: warningHeader(new StoredConfigError(location, refused.flatMap((r) => r.problems)).message) };
}

/** Service `name`, or a 404 when no policy, route or instance names it. */
export async function serviceView(deps: ServiceSources, name: string): Promise<ServiceView> {
  const view = (await listed(deps)).views.find((s) => s.name === name);
  if (!view) throw new ApiError('not-found', `unknown service ${name}: no policy, routes or instances`);
  return view;
}

export function registerServiceRoutes(router: Router, deps: ServiceSources): void {
  router
    .add({
      method: 'GET',
      path: '/api/v1/services',
      summary: 'Services with their instances, health and subsets; a stored policy or routes entry that fails its schema is left out and named in its service\'s problems and in a Warning header',
      auth: false,
      handler: async () => {
        const { views, headers } = await listed(deps);
        return { body: views, headers };
      },
    })
    .add({
      method: 'GET',
      path: '/api/v1/services/{name}',
      summary: 'One service with its instances, health and subsets',
      auth: false,
      handler: async ({ params }) => ({ body: await serviceView(deps, params.name!) }),
    });
}
