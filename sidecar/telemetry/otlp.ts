/**
 * OTLP/HTTP JSON export of spans (SPEC §6, `SKEIN_OTLP_ENDPOINT`): each batch is one
 * `ExportTraceServiceRequest` posted to `<endpoint>/v1/traces`, the form Jaeger (OTLP
 * receiver on :4318) and the OpenTelemetry Collector accept. Ids are hex strings and
 * timestamps nanosecond strings, as the OTLP JSON mapping requires. At most two posts are
 * in flight; batches beyond that are dropped and counted, so a slow collector costs memory
 * for two batches and nothing else.
 */
import { request } from 'undici';
import type { Logger } from '../../common/log.js';
import type { SpanRecord } from '../../common/proto/telemetry.js';

const SPAN_KIND_SERVER = 2;
const SPAN_KIND_CLIENT = 3;
const STATUS_UNSET = 0;
const STATUS_ERROR = 2;
const MAX_IN_FLIGHT = 2;

type AnyValue = { stringValue: string } | { intValue: string };
interface KeyValue {
  key: string;
  value: AnyValue;
}

function attr(key: string, value: string | number): KeyValue {
  return { key, value: typeof value === 'number' && Number.isInteger(value) ? { intValue: String(value) } : { stringValue: String(value) } };
}

/** Epoch milliseconds (fractional) as a decimal string of nanoseconds, exact to the microsecond. */
export function unixNanos(ms: number): string {
  const whole = Math.floor(ms);
  return (BigInt(whole) * 1_000_000n + BigInt(Math.round((ms - whole) * 1e3)) * 1_000n).toString();
}

/** The ExportTraceServiceRequest for spans of one sidecar (one resource: its service). */
export function otlpTraceRequest(service: string, instance: string, spans: readonly SpanRecord[], scopeVersion: string): object {
  return {
    resourceSpans: [
      {
        resource: { attributes: [attr('service.name', service), attr('service.instance.id', instance), attr('telemetry.sdk.name', 'skein')] },
        scopeSpans: [
          {
            scope: { name: 'skein-sidecar', version: scopeVersion },
            spans: spans.map((s) => ({
              traceId: s.traceId,
              spanId: s.spanId,
              ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}),
              name: s.name,
              kind: s.kind === 'client' ? SPAN_KIND_CLIENT : SPAN_KIND_SERVER,
              startTimeUnixNano: unixNanos(s.startMs),
              endTimeUnixNano: unixNanos(s.startMs + s.durationMs),
              attributes: [
                attr('http.request.method', s.method),
                attr('url.path', s.path),
                attr('http.response.status_code', s.status),
                attr('server.address', s.destination),
                attr('skein.source', s.source),
                attr('skein.destination', s.destination),
                attr('skein.subset', s.subset),
                attr('skein.attempts', s.attempts),
                ...(s.grpcStatus >= 0 ? [attr('rpc.grpc.status_code', s.grpcStatus)] : []),
              ],
              events: s.events.map((e) => ({ timeUnixNano: unixNanos(e.timeMs), name: e.name, attributes: Object.entries(e.attributes).map(([k, v]) => attr(k, v)) })),
              status: failed(s) ? { code: STATUS_ERROR, message: s.grpcStatus > 0 ? `grpc-status ${s.grpcStatus}` : `HTTP ${s.status}` } : { code: STATUS_UNSET },
            })),
          },
        ],
      },
    ],
  };
}

function failed(s: SpanRecord): boolean {
  return s.status >= 500 || s.status === 0 || s.grpcStatus > 0;
}

/** `http://collector:4318` → `http://collector:4318/v1/traces`; a URL already ending in /v1/traces is kept. */
export function tracesUrl(endpoint: string): string {
  const base = endpoint.replace(/\/+$/, '');
  return base.endsWith('/v1/traces') ? base : `${base}/v1/traces`;
}

export class OtlpExporter {
  private inFlight = 0;
  private lastWarning = 0;
  readonly url: string;

  constructor(
    endpoint: string,
    private readonly resource: { service: string; instance: string; version: string },
    private readonly logger: Logger,
    private readonly onDrop: (n: number) => void,
  ) {
    this.url = tracesUrl(endpoint);
  }

  export(spans: readonly SpanRecord[]): void {
    if (spans.length === 0) return;
    if (this.inFlight >= MAX_IN_FLIGHT) {
      this.onDrop(spans.length);
      return;
    }
    this.inFlight++;
    const body = JSON.stringify(otlpTraceRequest(this.resource.service, this.resource.instance, spans, this.resource.version));
    request(this.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, headersTimeout: 5_000, bodyTimeout: 5_000 })
      .then(async (res) => {
        await res.body.dump();
        if (res.statusCode >= 300) throw new Error(`HTTP ${res.statusCode}`);
      })
      .catch((err: Error) => {
        this.onDrop(spans.length);
        this.warn(err);
      })
      .finally(() => this.inFlight--);
  }

  /** At most one log line per 30 s: a collector that is down must not flood the logs. */
  private warn(err: Error): void {
    const now = Date.now();
    if (now - this.lastWarning < 30_000) return;
    this.lastWarning = now;
    this.logger.warn({ endpoint: this.url, err: err.message }, 'OTLP span export failed; spans dropped');
  }
}
