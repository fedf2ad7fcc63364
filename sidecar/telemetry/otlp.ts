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
import { spanFailed, type SpanRecord } from '../../common/proto/telemetry.js';
import { tracesUrl } from './otlp-endpoint.js';

const SPAN_KIND_SERVER = 2;
const SPAN_KIND_CLIENT = 3;
const STATUS_UNSET = 0;
const STATUS_ERROR = 2;
const MAX_IN_FLIGHT = 2;

const q = JSON.stringify;

function strAttr(key: string, value: string): string {
  return `{"key":"${key}","value":{"stringValue":${q(value)}}}`;
}

function intAttr(key: string, value: number): string {
  return `{"key":"${key}","value":{"intValue":"${value}"}}`;
}

function anyAttr(key: string, value: string | number): string {
  return typeof value === 'number' && Number.isInteger(value) ? intAttr(q(key).slice(1, -1), value) : strAttr(q(key).slice(1, -1), String(value));
}

/** Epoch milliseconds (fractional) as a decimal string of nanoseconds, exact to the microsecond. */
export function unixNanos(ms: number): string {
  const whole = Math.floor(ms);
  const micros = Math.round((ms - whole) * 1e3);
  // 13-digit milliseconds and up to 999 µs: string arithmetic, no BigInt per span.
  return micros === 1000 ? `${whole + 1}000000` : `${whole}${String(micros).padStart(3, '0')}000`;
}

/** The error status's message: the answer's status, then the sidecar's reason when it made the answer itself (`HTTP 403 denied`). */
function failureText(s: SpanRecord): string {
  const answer = s.grpcStatus > 0 ? `grpc-status ${s.grpcStatus}` : `HTTP ${s.status}`;
  return s.reason ? `${answer} ${s.reason}` : answer;
}

function spanJson(s: SpanRecord): string {
  const attrs = [
    strAttr('http.request.method', s.method),
    strAttr('url.path', s.path),
    intAttr('http.response.status_code', s.status),
    strAttr('server.address', s.destination),
    strAttr('skein.source', s.source),
    strAttr('skein.destination', s.destination),
    strAttr('skein.subset', s.subset),
    intAttr('skein.attempts', s.attempts),
  ];
  if (s.callerAttempt > 0) attrs.push(intAttr('skein.caller_attempt', s.callerAttempt));
  if (s.resendCount > 0) attrs.push(intAttr('http.request.resend_count', s.resendCount));
  if (s.grpcStatus >= 0) attrs.push(intAttr('rpc.grpc.status_code', s.grpcStatus));
  if (s.reason) attrs.push(strAttr('skein.reason', s.reason));
  const events = s.events.map((e) => `{"timeUnixNano":"${unixNanos(e.timeMs)}","name":${q(e.name)},"attributes":[${Object.entries(e.attributes).map(([k, v]) => anyAttr(k, v)).join(',')}]}`);
  const status = spanFailed(s) ? `{"code":${STATUS_ERROR},"message":${q(failureText(s))}}` : `{"code":${STATUS_UNSET}}`;
  // Ids are hex the sidecar made or validated (trace-context.ts), so they need no escaping.
  return (
    `{"traceId":"${s.traceId}","spanId":"${s.spanId}"${s.parentSpanId ? `,"parentSpanId":"${s.parentSpanId}"` : ''},"name":${q(s.name)},` +
    `"kind":${s.kind === 'client' ? SPAN_KIND_CLIENT : SPAN_KIND_SERVER},"startTimeUnixNano":"${unixNanos(s.startMs)}","endTimeUnixNano":"${unixNanos(s.startMs + s.durationMs)}",` +
    `"attributes":[${attrs.join(',')}],"events":[${events.join(',')}],"status":${status}}`
  );
}

/**
 * The ExportTraceServiceRequest, as JSON text, for spans of one sidecar (one resource: its
 * service). Written as text directly: building and stringifying an object tree per span
 * cost several times more, and this runs for every request.
 */
export function otlpTraceJson(service: string, instance: string, spans: readonly SpanRecord[], scopeVersion: string): string {
  const resource = `{"attributes":[${strAttr('service.name', service)},${strAttr('service.instance.id', instance)},${strAttr('telemetry.sdk.name', 'skein')}]}`;
  return `{"resourceSpans":[{"resource":${resource},"scopeSpans":[{"scope":{"name":"skein-sidecar","version":${q(scopeVersion)}},"spans":[${spans.map(spanJson).join(',')}]}]}]}`;
}

export class OtlpExporter {
  private inFlight = 0;
  private lastWarning = 0;
  readonly url: string;

  /** Throws OtlpEndpointError for an endpoint that is no http(s) URL (otlp-endpoint.ts). */
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
    const body = otlpTraceJson(this.resource.service, this.resource.instance, spans, this.resource.version);
    let posted: ReturnType<typeof request>;
    try {
      posted = request(this.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, headersTimeout: 5_000, bodyTimeout: 5_000 });
    } catch (err) {
      // undici throws some faults synchronously, and this runs from the flush timer: a throw
      // here would end the sidecar. The batch is lost, like one the collector refused.
      this.failed(spans.length, err as Error);
      return;
    }
    this.inFlight++;
    posted
      .then(async (res) => {
        await res.body.dump();
        if (res.statusCode >= 300) throw new Error(`HTTP ${res.statusCode}`);
      })
      .catch((err: Error) => this.failed(spans.length, err))
      .finally(() => this.inFlight--);
  }

  private failed(spans: number, err: Error): void {
    this.onDrop(spans);
    this.warn(err);
  }

  /** At most one log line per 30 s: a collector that is down must not flood the logs. */
  private warn(err: Error): void {
    const now = Date.now();
    if (now - this.lastWarning < 30_000) return;
    this.lastWarning = now;
    this.logger.warn({ endpoint: this.url, err: err.message }, 'OTLP span export failed; spans dropped');
  }
}
