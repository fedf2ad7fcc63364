/**
 * `GET /api/v1/proxies`: connected sidecars and whether each runs the newest snapshot;
 * `GET /api/v1/snapshot`: that snapshot, exactly as pushed.
 */
import { serviceName } from '../../common/config/schema.js';
import type { ProxyTracker } from '../push/proxies.js';
import type { SnapshotPublisher } from '../state/snapshots.js';
import { EMPTY_IS_ABSENT, queryParam } from './query-param.js';
import type { Router } from './router.js';

export function registerProxyRoutes(router: Router, deps: { proxies: ProxyTracker; publisher: SnapshotPublisher }): void {
  router.add({
    method: 'GET',
    path: '/api/v1/proxies',
    summary: 'Connected sidecars: service, instance, snapshot version ACKed or NACKed (with reason), SYNCED/STALE/NACKED, cert expiry, what each runs without (config features newer than it)',
    auth: false,
    query: [{ name: 'service', description: 'only the sidecars of this service' }],
    handler: async ({ query }) => {
      const version = deps.publisher.current().version;
      // A filter: given empty, none, as on the observability routes.
      const service = queryParam(query, 'service', serviceName, EMPTY_IS_ABSENT);
      const proxies = deps.proxies.view(version).filter((p) => !service || p.service === service);
      return { body: { snapshotVersion: version, proxies } };
    },
  });
  router.add({
    method: 'GET',
    path: '/api/v1/snapshot',
    summary: 'The snapshot the control plane pushes now (SPEC §4 form, endpoints included)',
    auth: false,
    handler: async () => {
      const current = deps.publisher.current();
      return { body: JSON.parse(current.json) as unknown, headers: { 'skein-snapshot-version': current.version } };
    },
  });
}
