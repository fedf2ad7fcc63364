/**
 * The access log (`--access-log`): one line per finished request, on both listeners, as
 * Envoy's access logs, Linkerd's `config.linkerd.io/access-log` and Consul's `AccessLogs` give
 * one. Off by default: then nothing of it is on the request path (the exchanges' recorder
 * stays null when nothing else records either).
 *
 * Lines go through pino's destination (sonic-boom): written asynchronously off the request's
 * turn, 8 KiB or a second's worth at a time. A destination that cannot keep up or fails loses
 * lines, never requests: past `MAX_BUFFERED_BYTES` waiting, lines are dropped and counted
 * (`skein_access_log_dropped_total`), and a failed write is logged once and tried again with
 * the next line.
 */
import { once } from 'node:events';
import { Counter } from 'prom-client';
import pino from 'pino';
import type { Logger } from '../../common/log.js';
import type { AccessLogFormat } from '../options.js';
import { pathOnly, type Hop } from './hop.js';
import type { SidecarMetrics } from './metrics.js';

/** `--access-log` values that name a stream rather than a file. */
const STREAMS: Readonly<Record<string, number>> = { stdout: 1, stderr: 2 };

/** Lines waiting for the destination beyond this are dropped rather than held (a stalled disk must not grow the sidecar). */
export const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;
/**
 * Lines are written once this many bytes wait, or every FLUSH_MS, as Envoy buffers its access
 * logs: a write per line (a trip to libuv's thread pool and a system call) cost about 50 µs of
 * CPU a request at 1000 rps, a quarter of what a sidecar spends on the request itself.
 */
const FLUSH_BYTES = 8 * 1024;
const FLUSH_MS = 1000;

/** What a line reads of a finished request, beyond the Hop the spans and the tap read; the Exchange has it all. */
export interface LoggedHop extends Hop {
  /** The `x-request-id` sent on (the caller's, or one made for it); undefined for a request answered before it was forwarded. */
  readonly requestId: string | undefined;
  /** The subset the request went to (a failover target's after failing over), null before one was chosen. */
  readonly subset: { readonly service: string } | null;
  /** The matched route rule (its name), null before one matched. */
  readonly route: { readonly name: string } | null;
  /** The endpoint of the last try, undefined when none was sent. */
  readonly lastEndpoint: { readonly key: string } | undefined;
  readonly grpc: boolean;
  readonly grpcWebType: string | undefined;
  /** The Upgrade header's value ('' for none): an upgrade's bytes are spliced, not counted. */
  readonly upgrade: string;
  /** The request's declared Content-Length, -1 when it declared none. */
  readonly contentLength: number;
  /** Bytes of the upstream's answer body passed on to the caller. */
  readonly responseBytes: number;
  /** The text of an answer the sidecar made itself (its body, its Proxy-Status details); undefined for a relayed one. */
  readonly reasonDetail: string | undefined;
  readonly req: { readonly rawHeaders: readonly string[] };
}

/** The caller's User-Agent, read only when a line is written. */
function userAgentOf(raw: readonly string[]): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 10 && name.toLowerCase() === 'user-agent') return raw[i + 1];
  }
  return undefined;
}

function protocolOf(hop: LoggedHop): string {
  if (hop.grpcWebType !== undefined) return 'grpc-web';
  if (hop.grpc) return 'grpc';
  return hop.upgrade === '' ? 'http' : 'upgrade';
}

/** The fields of one line, in the order both formats write them. */
export interface AccessLogRecord {
  /** When the request arrived (ISO 8601, UTC). */
  time: string;
  direction: string;
  source: string;
  destination: string;
  subset: string;
  route: string;
  protocol: string;
  method: string;
  authority: string;
  /** Without the query string: queries may carry secrets, as the tap and spans leave them out. */
  path: string;
  status: number;
  /** gRPC calls only. */
  grpcStatus?: number;
  /** `x-skein-reason` of an answer the sidecar made itself, else absent. */
  reason?: string;
  reasonDetail?: string;
  durationMs: number;
  attempts: number;
  upstream: string;
  requestBytes?: number;
  responseBytes: number;
  requestId: string;
  traceId: string;
  userAgent: string;
}

export function accessLogRecord(hop: LoggedHop, status: number, seconds: number): AccessLogRecord {
  const edge = hop.edge;
  const record: AccessLogRecord = {
    time: new Date(performance.timeOrigin + hop.startedAt).toISOString(),
    direction: hop.deps.direction,
    source: edge?.source ?? '',
    // Where it went, as its metrics count it: a failover target's service rather than the one named.
    destination: hop.subset?.service ?? hop.destination,
    subset: edge?.subset ?? '',
    route: hop.route?.name ?? '',
    protocol: protocolOf(hop),
    method: hop.method,
    authority: hop.authority,
    path: pathOnly(hop.url),
    status,
    durationMs: Math.round(seconds * 1e6) / 1e3,
    attempts: hop.attempts,
    upstream: hop.lastEndpoint?.key ?? '',
    responseBytes: hop.responseBytes,
    requestId: hop.requestId ?? '',
    traceId: hop.traceId,
    userAgent: userAgentOf(hop.req.rawHeaders) ?? '',
  };
  if (hop.grpc) record.grpcStatus = hop.grpcStatus ?? -1;
  if (hop.reason !== undefined) {
    record.reason = hop.reason;
    if (hop.reasonDetail !== undefined) record.reasonDetail = hop.reasonDetail;
  }
  if (hop.contentLength >= 0) record.requestBytes = hop.contentLength;
  return record;
}

/** A request that could not be parsed (the listeners' MalformedListener): no method, path or ids to tell, only why. */
export function malformedRecord(direction: string, status: number, detail: string): AccessLogRecord {
  return {
    time: new Date().toISOString(), direction, source: '', destination: '', subset: '', route: '', protocol: 'http', method: '', authority: '', path: '',
    status, reason: 'bad-request', reasonDetail: detail, durationMs: 0, attempts: 0, upstream: '', responseBytes: 0, requestId: '', traceId: '', userAgent: '',
  };
}

/** A text field: `-` for none, quoted where it may hold spaces (Envoy's default format does the same). */
function dash(value: string | number | undefined): string {
  return value === undefined || value === '' ? '-' : String(value);
}

function quoted(value: string | undefined): string {
  return value === undefined || value === '' ? '-' : JSON.stringify(value);
}

/**
 * One line, newline included. text, fields by position as in Envoy's default format: `[time]
 * direction "METHOD path protocol" status grpc-status reason attempts request-bytes
 * response-bytes duration-ms "authority" source destination subset route upstream request-id
 * trace-id "user-agent" "reason detail"`, `-` for what a request has not.
 */
export function formatAccessLog(record: AccessLogRecord, format: AccessLogFormat): string {
  if (format === 'json') return `${JSON.stringify(record)}\n`;
  const r = record;
  return (
    `[${r.time}] ${r.direction} "${dash(r.method)} ${dash(r.path)} ${r.protocol}" ${r.status} ${dash(r.grpcStatus)} ${dash(r.reason)} ${r.attempts} ` +
    `${dash(r.requestBytes)} ${r.responseBytes} ${r.durationMs} ${quoted(r.authority)} ${dash(r.source)} ${dash(r.destination)} ${dash(r.subset)} ` +
    `${dash(r.route)} ${dash(r.upstream)} ${dash(r.requestId)} ${dash(r.traceId)} ${quoted(r.userAgent)} ${quoted(r.reasonDetail)}\n`
  );
}

export interface AccessLogOptions {
  /** `stdout`, `stderr` or a file path (opened for appending). */
  readonly destination: string;
  readonly format: AccessLogFormat;
  readonly metrics: SidecarMetrics;
  readonly logger: Logger;
  /** MAX_BUFFERED_BYTES unless given (tests). */
  readonly maxBufferedBytes?: number;
}

/** The destination could not be opened at start: the sidecar does not start without the log it was asked for. */
export class AccessLogOpenError extends Error {
  constructor(destination: string, cause: Error) {
    super(`--access-log ${destination}: cannot open it for appending: ${cause.message}`);
  }
}

export class AccessLog {
  private readonly dropped: Counter;
  /** A failed write is logged once, until a write succeeds again. */
  private failing = false;
  /** Requests cut off at the drain's end may finish after close: their lines are not written. */
  private closed = false;

  private constructor(
    private readonly stream: ReturnType<typeof pino.destination>,
    private readonly options: AccessLogOptions,
  ) {
    this.dropped = new Counter({
      name: 'skein_access_log_dropped_total',
      help: 'Access log lines dropped because the destination fell behind or failed',
      registers: [options.metrics.registry],
    });
    stream.on('drop', (data: string) => this.dropped.inc(countLines(data)));
    stream.on('error', (err: Error) => {
      if (this.failing) return;
      this.failing = true;
      options.logger.warn({ err, destination: options.destination }, 'access log write failed; lines are kept (up to 16 MiB) and written again with the next one');
    });
    stream.on('write', () => {
      if (!this.failing) return;
      this.failing = false;
      options.logger.info({ destination: options.destination }, 'access log writes succeed again');
    });
  }

  /** Opens the destination; rejects with AccessLogOpenError when it cannot be. */
  static async open(options: AccessLogOptions): Promise<AccessLog> {
    const fd = STREAMS[options.destination];
    const stream = pino.destination({
      dest: fd ?? options.destination,
      sync: false,
      minLength: FLUSH_BYTES,
      periodicFlush: FLUSH_MS,
      maxLength: options.maxBufferedBytes ?? MAX_BUFFERED_BYTES,
    });
    try {
      await once(stream, 'ready');
    } catch (err) {
      throw new AccessLogOpenError(options.destination, err as Error);
    }
    return new AccessLog(stream, options);
  }

  /** A file, which log rotation renames: `reopen` opens the path anew. */
  get isFile(): boolean {
    return STREAMS[this.options.destination] === undefined;
  }

  write(hop: LoggedHop, status: number, seconds: number): void {
    if (this.closed) return;
    this.stream.write(formatAccessLog(accessLogRecord(hop, status, seconds), this.options.format));
  }

  malformed(direction: string, status: number, detail: string): void {
    if (this.closed) return;
    this.stream.write(formatAccessLog(malformedRecord(direction, status, detail), this.options.format));
  }

  /** After rotation (SIGHUP): later lines go to a file at the path, created anew when it was moved away. */
  reopen(): void {
    if (!this.isFile) return;
    this.stream.reopen();
    this.options.logger.info({ destination: this.options.destination }, 'access log reopened');
  }

  /** Writes what is still waiting, then closes the destination (at shutdown). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const closed = once(this.stream, 'close').catch(() => undefined);
    this.stream.end();
    await closed;
  }
}

function countLines(data: string): number {
  let n = 0;
  for (let i = data.indexOf('\n'); i >= 0; i = data.indexOf('\n', i + 1)) n++;
  return n;
}
