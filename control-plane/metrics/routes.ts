/**
 * `GET /metrics` on the admin port: the control plane's registry in Prometheus text. Open
 * like the other reads and like the sidecars' /metrics, so a scraper needs no admin token.
 */
import type { Registry } from 'prom-client';
import type { Router } from '../admin-api/router.js';

export function registerMetricsRoute(router: Router, registry: Registry): void {
  router.add({
    method: 'GET',
    path: '/metrics',
    summary: 'Prometheus text: CSRs by outcome, proxies by sync state, snapshot pushes, ACKs/NACKs, bootstrap tokens, admin requests, process metrics',
    auth: false,
    produces: registry.contentType,
    handler: async ({ res }) => {
      const text = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-cache' });
      res.end(text);
      return undefined;
    },
  });
}
