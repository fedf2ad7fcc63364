/**
 * `GET /api/v1/services`: every service the mesh knows (from stored config or discovery),
 * with its instances and health, and its subsets with how many instances each selects.
 */
import type { Discovery, Instance } from '../registry/discovery.js';
import type { MeshConfig } from '../state/mesh-config.js';
import type { StoredConfig } from '../state/resources.js';
import { ApiError } from './errors.js';
import type { Router } from './router.js';

export interface ServiceView {
  name: string;
  protocol: string;
  instances: { id: string; address: string; port: number; version: string; labels: Record<string, string>; health: string }[];
  subsets: { name: string; labels: Record<string, string>; declared: boolean; instances: number }[];
  hasPolicy: boolean;
  hasRoutes: boolean;
}

export function serviceViews(config: StoredConfig, instances: readonly Instance[]): ServiceView[] {
  const names = new Set([...Object.keys(config.policies), ...Object.keys(config.routes), ...instances.map((i) => i.service)]);
  return [...names].sort().map((name) => {
    const own = instances.filter((i) => i.service === name);
    const policy = config.policies[name];
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
      hasRoutes: config.routes[name] !== undefined,
    };
  });
}

/** Where the names of services come from: stored policies and routes, and discovered instances. */
export interface ServiceSources {
  readonly config: MeshConfig;
  readonly discovery: Discovery;
}

/** Service `name`, or a 404 when no policy, route or instance names it. */
export async function serviceView(deps: ServiceSources, name: string): Promise<ServiceView> {
  const view = serviceViews(await deps.config.load(), deps.discovery.instances()).find((s) => s.name === name);
  if (!view) throw new ApiError('not-found', `unknown service ${name}: no policy, routes or instances`);
  return view;
}

export function registerServiceRoutes(router: Router, deps: ServiceSources): void {
  router
    .add({
      method: 'GET',
      path: '/api/v1/services',
      summary: 'Services with their instances, health and subsets',
      auth: false,
      handler: async () => ({ body: serviceViews(await deps.config.load(), deps.discovery.instances()) }),
    })
    .add({
      method: 'GET',
      path: '/api/v1/services/{name}',
      summary: 'One service with its instances, health and subsets',
      auth: false,
      handler: async ({ params }) => ({ body: await serviceView(deps, params.name!) }),
    });
}
