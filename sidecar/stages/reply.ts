/**
 * Responses the sidecar makes itself (no upstream answer): status and `x-skein-reason` from
 * the catalogue in common/errors.ts, the same reason as an RFC 9209 `Proxy-Status` entry naming
 * this sidecar (proxyStatus), and a one-line text body. gRPC callers (content-type
 * application/grpc) get a trailers-only answer instead: HTTP 200 with `grpc-status` and
 * `grpc-message` in the headers, which is how gRPC reports errors before any message.
 * A calling sidecar must be able to tell such an answer from its app's: a mux stream marks it
 * in its frame (`sidecarMade`), an HTTP/2 one between sidecars with its session's token
 * (h2-sidecar-made.ts).
 */
import { STATUS_CODES } from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { NO_HEADERS, REASONS, type Reason } from '../../common/errors.js';
import { httpDate } from '../../common/http/date.js';
import type { ProxyResponse } from '../exchange.js';
import { SIDECAR_MADE_HEADER, sessionToken } from '../h2-sidecar-made.js';

/**
 * Writes the sidecar-made response for `reason`; returns the HTTP status sent. `grpcType` is
 * the content-type of a gRPC answer: a gRPC-Web caller's own (`application/grpc-web+proto`,
 * `application/grpc-web-text`…), since its clients refuse an answer of another type. `extra`:
 * header lines (name, value, …) of the reason's own (SkeinError.responseHeaders: `retry-after`).
 */
export function sidecarReply(
  res: ProxyResponse,
  proxy: string,
  reason: Reason,
  detail: string | undefined,
  grpc: boolean,
  status: number = REASONS[reason].status,
  grpcType = 'application/grpc',
  receivedStatus?: number,
  extra: readonly string[] = NO_HEADERS,
): number {
  const message = detail ?? REASONS[reason].message;
  const entry = proxyStatus(proxy, reason, message, receivedStatus);
  const stream = h2Stream(res);
  if (res.headersSent) {
    if (grpc && stream !== undefined && !stream.destroyed && !stream.closed && !stream.writableEnded) {
      // An HTTP/2 gRPC response already begun still ends with a status, in its trailers: cut,
      // its stream would end in RST_STREAM NO_ERROR, which grpc-js reports as `13 INTERNAL:
      // Received RST_STREAM with code 0 (Call ended without gRPC status)`.
      // The head was the upstream's; the entry in the trailers says who ended the call (RFC 9209 allows trailers).
      res.addTrailers({ 'grpc-status': String(REASONS[reason].grpc), 'grpc-message': grpcMessage(message), 'x-skein-reason': reason, 'proxy-status': entry });
      res.end();
      return 200;
    }
    res.destroy();
    return status;
  }
  // Only a head is marked: a calling sidecar decides on heads, never on a begun answer's trailers.
  const token = stream === undefined ? undefined : sessionToken(stream.session);
  if (grpc) {
    const headers: Record<string, string> = { 'content-type': grpcType, 'grpc-status': String(REASONS[reason].grpc), 'grpc-message': grpcMessage(message), 'x-skein-reason': reason, 'proxy-status': entry };
    if (token !== undefined) headers[SIDECAR_MADE_HEADER] = token;
    for (let i = 0; i < extra.length; i += 2) headers[extra[i]!] = extra[i + 1]!;
    if (stream !== undefined) {
      // Trailers-only: one HEADERS frame that ends the stream, as gRPC expects.
      if (!stream.headersSent && !stream.destroyed) stream.respond({ ':status': 200, ...headers }, { endStream: true });
      return 200;
    }
    res.sidecarMade = true;
    res.writeHead(200, { ...headers, 'content-length': '0' });
    res.end();
    return 200;
  }
  // A mux stream marks the answer as this sidecar's own in its frame, where no app header reaches.
  res.sidecarMade = true;
  if (status === 204 || status === 205 || status === 304) {
    // A fault's abort status may be one that has no content (RFC 9110 §15.3.5, §15.3.6, §15.4.5):
    // a head alone, without Content-Length (a 204 must not send one; an HTTP/2 client resets a
    // 204 that declares a length: PROTOCOL_ERROR), but 0 on a 205 so no HTTP/1.1 chunking follows.
    const head = ['content-type', 'text/plain; charset=utf-8', 'x-skein-reason', reason, 'proxy-status', entry, ...extra];
    if (status === 205) head.push('content-length', '0');
    if (token !== undefined) head.push(SIDECAR_MADE_HEADER, token);
    res.writeHead(status, head);
    res.end();
    return status;
  }
  const body = `${message}\n`;
  const head = ['content-type', 'text/plain; charset=utf-8', 'x-skein-reason', reason, 'proxy-status', entry, ...extra, 'content-length', String(Buffer.byteLength(body))];
  if (token !== undefined) head.push(SIDECAR_MADE_HEADER, token);
  res.writeHead(status, head);
  res.end(body);
  return status;
}

/**
 * This sidecar's name in the Proxy-Status entries of the answers it makes (RFC 9209 §2: the name
 * identifies the intermediary, not the product): its service and the listener's direction. On a
 * two-hop path the caller's sidecar (`skein-web-outbound`: no route, no endpoint, the breaker) is
 * then told from the called one's (`skein-catalog-inbound`: an intention, its app down), and a
 * sidecar's inbound answer from one made on its app's own outbound calls. A service name is a DNS
 * label and the prefix starts with a letter, so the name is an sf-token as it stands.
 */
export function proxyName(service: string, direction: 'inbound' | 'outbound'): string {
  return `skein-${service}-${direction}`;
}

/**
 * The `Proxy-Status` entry (RFC 9209) of an answer this sidecar made: its name, the reason's error
 * type (REASONS), the text its body says, and, when a try's answer had been given up for a retry
 * before the sidecar answered, that answer's status (`received-status`, §2.1.4). `details` is an
 * sf-string (RFC 8941 §3.3.3): printable ASCII alone, which grpcMessage leaves (the rest
 * percent-encoded), with `"` and `\` escaped.
 */
export function proxyStatus(proxy: string, reason: Reason, details: string, receivedStatus?: number): string {
  const entry = `${proxy}; error=${REASONS[reason].proxyError}; details="${grpcMessage(details).replace(/["\\]/gu, '\\$&')}"`;
  return receivedStatus === undefined ? entry : `${entry}; received-status=${receivedStatus}`;
}

/**
 * `grpc-message` as the gRPC spec encodes it: printable ASCII but `%` as it is, the rest
 * percent-encoded (UTF-8). encodeURIComponent also encodes `:`, `/`, `,`…, which grpc-js
 * (decoding with decodeURI) shows as `%3A`.
 */
export function grpcMessage(text: string): string {
  return text.replace(/[^\x20-\x24\x26-\x7e]/gu, (c) => encodeURIComponent(c));
}

/** node:http2's stream under a compatibility response (gRPC callers); undefined for Skein's HTTP/1.1 and mux responses. */
export function h2Stream(res: ProxyResponse): ServerHttp2Stream | undefined {
  const stream = (res as unknown as { stream?: ServerHttp2Stream }).stream;
  return stream !== undefined && typeof stream.respond === 'function' ? stream : undefined;
}

/** The same on a raw socket (parse errors, refused upgrades), closing the connection after it; the status line has the standard reason phrase, as OutgoingBase.writeHead writes it. */
export function socketReply(socket: Socket, proxy: string, status: number, reason: Reason, detail?: string, headRequest = false, extra: readonly string[] = NO_HEADERS): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const message = detail ?? REASONS[reason].message;
  const body = `${message}\n`;
  let lines = '';
  for (let i = 0; i < extra.length; i += 2) lines += `${extra[i]}: ${extra[i + 1]}\r\n`;
  // A HEAD request's answer has the head its GET's would have, and no body (RFC 9110 §9.3.2).
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\ncontent-type: text/plain; charset=utf-8\r\nx-skein-reason: ${reason}\r\nproxy-status: ${proxyStatus(proxy, reason, message)}\r\n${lines}date: ${httpDate()}\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${headRequest ? '' : body}`,
  );
  linger(socket);
}

/** After the last answer on a connection, the client has this long to close its side before it is cut. */
const LINGER_MS = 5000;

function drop(): void {}

function cut(socket: Socket): void {
  socket.destroy();
}

/**
 * A connection this end has finished writing to (end() called): what the client still sends is
 * read and dropped until it closes its side, or LINGER_MS pass. A socket left paused (an
 * upgrade's is, once handed over) would never see the client's FIN and stay open. The bound
 * is absolute (not socket.setTimeout, which every byte restarts, so a client trickling bytes
 * would hold the socket for ever); destroying a socket that closed meanwhile does nothing.
 */
export function linger(socket: Socket): void {
  socket.on('data', drop);
  setTimeout(cut, LINGER_MS, socket).unref();
  socket.resume();
}
