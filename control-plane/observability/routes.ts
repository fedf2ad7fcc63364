/**
 * Admin API routes of observability (SPEC §5): `GET /api/v1/stats`, `GET /api/v1/tap`
 * (Server-Sent Events, one `data:` line of JSON per request), `GET /api/v1/traces` and
 * `GET /api/v1/traces/{id}`. Their query parameters are filters (and a limit) a form may leave
 * blank, so one given empty counts as not given, as the README documents.
 */
import { z } from 'zod';
import { methodName, requestPath, serviceName } from '../../common/config/schema.js';
import { ApiError } from '../admin-api/errors.js';
import { EMPTY_IS_ABSENT, queryParam } from '../admin-api/query-param.js';
import type { Router } from '../admin-api/router.js';
import { serviceView, type ServiceSources } from '../admin-api/services-routes.js';
import type { Observability } from './observability.js';
import { isStatusFilter, STATUS_FILTER_RULE, type TapFilter } from './tap.js';

const HEARTBEAT_MS = 15_000;
/** Bytes of tap events queued for a client that does not read them, beyond which rows are skipped (and counted as dropped). */
export const TAP_MAX_BUFFERED = 1 << 20;
const MAX_TRACES = 500;

const directionParam = z.enum(['inbound', 'outbound'], { errorMap: () => ({ message: 'must be inbound or outbound' }) });
const statusParam = z.string().refine(isStatusFilter, `must be ${STATUS_FILTER_RULE}`);
const limitParam = z
  .string()
  .regex(/^[1-9]\d*$/, 'must be a whole number of at least 1')
  .transform((v) => Math.min(MAX_TRACES, Number(v)));

export function registerObservabilityRoutes(router: Router, obs: Observability, services: ServiceSources): void {
  /**
   * A 404 for a service no policy, route or instance names, unless what is asked still `holds`
   * something of it: a service whose instances just left has its last minute and its traces to show.
   */
  const requireService = async (name: string | undefined, holds = false): Promise<void> => {
    if (name !== undefined && !holds) await serviceView(services, name);
  };
  router
    .add({
      method: 'GET',
      path: '/api/v1/stats',
      summary: 'Golden metrics (requests, RPS, success rate, p50/p95/p99 latency) per service and per edge source → destination, over 10 s and 1 min, with per-subset rows and open circuit breakers',
      auth: false,
      query: [{ name: 'service', description: 'only this service and the edges into and out of it' }],
      handler: async ({ query }) => {
        const service = queryParam(query, 'service', serviceName, EMPTY_IS_ABSENT);
        const view = obs.stats.view({ service });
        // Held: its own row, or edges out of it. Edges into a name without a row of its own lead to NO_ROUTE, no service.
        await requireService(service, view.services.length > 0 || view.edges.some((e) => e.source === service));
        return { body: view };
      },
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
        const service = queryParam(query, 'service', serviceName, EMPTY_IS_ABSENT);
        if (!service) throw new ApiError('bad-request', 'give the service to tap: /api/v1/tap?service=NAME');
        const filter: TapFilter = {
          method: queryParam(query, 'method', methodName, EMPTY_IS_ABSENT),
          pathPrefix: queryParam(query, 'path', requestPath, EMPTY_IS_ABSENT),
          status: queryParam(query, 'status', statusParam, EMPTY_IS_ABSENT),
          direction: queryParam(query, 'direction', directionParam, EMPTY_IS_ABSENT),
          peer: queryParam(query, 'peer', serviceName, EMPTY_IS_ABSENT),
        };
        // Only a service's own sidecars are tapped: one nothing names would stream nothing, ever.
        await requireService(service);
        res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
        res.write(`retry: 2000\n: tapping ${service}\n\n`);
        // A client that stops reading must not make the control plane buffer its rows without
        // end: beyond TAP_MAX_BUFFERED bytes queued, rows are skipped and counted, and told as
        // one `dropped` event once the client has read what was queued.
        let skipped = 0;
        const writeDropped = (n: number) => res.write(`event: dropped\ndata: ${JSON.stringify({ dropped: n })}\n\n`);
        const backedUp = (n: number): boolean => {
          if (res.writableLength >= TAP_MAX_BUFFERED) {
            skipped += n;
            return true;
          }
          if (skipped > 0) {
            writeDropped(skipped);
            skipped = 0;
          }
          return false;
        };
        res.on('drain', () => backedUp(0));
        const unsubscribe = obs.tap.subscribe(
          service,
          filter,
          (event) => {
            if (!backedUp(1)) res.write(`data: ${JSON.stringify(event)}\n\n`);
          },
          (n) => {
            if (!backedUp(n)) writeDropped(n);
          },
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
        { name: 'limit', description: `at most this many (default 50; more than ${MAX_TRACES} gives ${MAX_TRACES})` },
      ],
      handler: async ({ query }) => {
        const service = queryParam(query, 'service', serviceName, EMPTY_IS_ABSENT);
        const traces = obs.traces.recent(queryParam(query, 'limit', limitParam, EMPTY_IS_ABSENT), service);
        await requireService(service, traces.length > 0);
        return { body: { traces, droppedBySidecars: obs.traces.droppedBySidecars } };
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
