/**
 * Admin API routes of observability (SPEC §5): `GET /api/v1/stats`, `GET /api/v1/tap`
 * (Server-Sent Events, one `data:` line of JSON per request), `GET /api/v1/traces` and
 * `GET /api/v1/traces/{id}`.
 */
import { ApiError } from '../admin-api/errors.js';
import type { Router } from '../admin-api/router.js';
import type { Observability } from './observability.js';
import { isStatusFilter, STATUS_FILTER_RULE, type TapFilter } from './tap.js';

const HEARTBEAT_MS = 15_000;

export function registerObservabilityRoutes(router: Router, obs: Observability): void {
  router
    .add({
      method: 'GET',
      path: '/api/v1/stats',
      summary: 'Golden metrics (requests, RPS, success rate, p50/p95/p99 latency) per service and per edge source → destination, over 10 s and 1 min, with per-subset rows and open circuit breakers',
      auth: false,
      query: [{ name: 'service', description: 'only this service and the edges into and out of it' }],
      handler: async ({ query }) => ({ body: obs.stats.view({ service: query.get('service') ?? undefined }) }),
    })
    .add({
      method: 'GET',
      path: '/api/v1/tap',
      summary: "Server-Sent Events: one event per request through the service's sidecars (rate-limited to 100 rows/s per sidecar)",
      auth: false,
      query: [
        { name: 'service', required: true, description: 'the service whose sidecars to tap' },
        { name: 'method', description: 'only this HTTP method' },
        { name: 'path', description: 'only paths starting with this prefix' },
        { name: 'status', description: 'only this status class (e.g. 5xx) or exact status (e.g. 503)' },
        { name: 'direction', description: 'inbound or outbound' },
        { name: 'peer', description: 'only requests from (inbound) or to (outbound) this service' },
      ],
      handler: async ({ query, req, res }) => {
        const service = query.get('service');
        if (!service) throw new ApiError('bad-request', 'give the service to tap: /api/v1/tap?service=NAME');
        const direction = query.get('direction');
        if (direction && direction !== 'inbound' && direction !== 'outbound') throw new ApiError('bad-request', 'direction must be inbound or outbound');
        const status = query.get('status');
        if (status && !isStatusFilter(status)) throw new ApiError('bad-request', `status must be ${STATUS_FILTER_RULE}`);
        const filter: TapFilter = {
          method: query.get('method') ?? undefined,
          pathPrefix: query.get('path') ?? undefined,
          status: status ?? undefined,
          direction: (direction as TapFilter['direction']) ?? undefined,
          peer: query.get('peer') ?? undefined,
        };
        res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
        res.write(`retry: 2000\n: tapping ${service}\n\n`);
        const unsubscribe = obs.tap.subscribe(
          service,
          filter,
          (event) => res.write(`data: ${JSON.stringify(event)}\n\n`),
          (n) => res.write(`event: dropped\ndata: ${JSON.stringify({ dropped: n })}\n\n`),
        );
        const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
        const stop = () => {
          clearInterval(heartbeat);
          unsubscribe();
        };
        req.socket.setTimeout(0);
        res.once('close', stop);
        return undefined;
      },
    })
    .add({
      method: 'GET',
      path: '/api/v1/traces',
      summary: 'The newest traces in the in-memory store (one line each: root, services, spans, duration, error)',
      auth: false,
      query: [
        { name: 'service', description: 'only traces through this service' },
        { name: 'limit', description: 'at most this many (default 50, max 500)' },
      ],
      handler: async ({ query }) => {
        const limit = Math.min(500, Math.max(1, Number(query.get('limit') ?? 50) || 50));
        return { body: { traces: obs.traces.recent(limit, query.get('service') ?? undefined), droppedBySidecars: obs.traces.droppedBySidecars } };
      },
    })
    .add({
      method: 'GET',
      path: '/api/v1/traces/{id}',
      summary: 'One trace with all its spans (one per hop), ordered by start time',
      auth: false,
      handler: async ({ params }) => {
        const trace = obs.traces.get(params.id!);
        if (!trace) throw new ApiError('not-found', `no trace ${params.id} in the store (it keeps the newest 2000)`);
        return { body: trace };
      },
    });
}
