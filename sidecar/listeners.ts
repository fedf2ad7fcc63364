/**
 * The proxy listeners: node:http (or https for mTLS inbound) servers sharing one set of
 * options. Parse errors never reach the pipeline: `clientError` answers them on the raw
 * socket (431 for headers over 64 KiB, 400 otherwise, both with `x-skein-reason:
 * bad-request`) and only that connection closes.
 */
import { createServer as createHttpServer, type Server, type ServerOptions } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { TlsOptions } from 'node:tls';
import { ProxyRequest, ProxyResponse } from './exchange.js';
import { socketReply } from './stages/reply.js';

export const MAX_HEADER_BYTES = 64 * 1024;

const SERVER_OPTIONS: ServerOptions<typeof ProxyRequest, typeof ProxyResponse> = {
  IncomingMessage: ProxyRequest,
  ServerResponse: ProxyResponse,
  maxHeaderSize: MAX_HEADER_BYTES,
  // Absent Host is the pipeline's to judge (absolute-form targets, dedicated ports).
  requireHostHeader: false,
  // Longer than the peers' pool idle timeout, so a pooled connection is never closed under a request.
  keepAliveTimeout: 65_000,
  // Streams (uploads, long polls) may last; the header deadline still stops slowloris.
  requestTimeout: 0,
  headersTimeout: 60_000,
  noDelay: true,
};

export type RequestListener = (req: ProxyRequest, res: ProxyResponse) => void;
export type UpgradeListener = (req: ProxyRequest, socket: Socket, head: Buffer) => void;

function onClientError(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  if (err.code === 'HPE_HEADER_OVERFLOW') socketReply(socket, 431, 'Request Header Fields Too Large', 'bad-request', `request headers exceed ${MAX_HEADER_BYTES} bytes`);
  else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') socketReply(socket, 408, 'Request Timeout', 'bad-request', 'request headers not received in time');
  else socketReply(socket, 400, 'Bad Request', 'bad-request', `malformed HTTP request: ${err.code ?? err.message}`);
}

export function createProxyServer(onRequest: RequestListener, onUpgrade: UpgradeListener, tls?: TlsOptions): Server {
  const server: Server = tls
    ? (createHttpsServer({ ...SERVER_OPTIONS, ...tls }, onRequest as never) as unknown as Server)
    : (createHttpServer(SERVER_OPTIONS, onRequest as never) as unknown as Server);
  server.on('clientError', onClientError);
  server.on('upgrade', onUpgrade);
  return server;
}

export function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
