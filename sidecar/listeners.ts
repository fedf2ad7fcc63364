/**
 * The proxy listeners. Each is a front server (net, or tls for mTLS inbound) that hands every
 * connection to one of two protocol servers: node:http for HTTP/1.1, node:http2 for HTTP/2
 * (gRPC). Plain listeners tell them apart by the HTTP/2 connection preface (gRPC clients
 * speak h2c with prior knowledge); TLS listeners by ALPN. The choice is made once per
 * connection, so HTTP/1.1 requests take node:http's usual path.
 *
 * Parse errors never reach the pipeline: `clientError` answers them on the raw socket (431
 * for headers over 64 KiB, 400 otherwise, both with `x-skein-reason: bad-request`) and only
 * that connection closes.
 */
import { createServer as createHttpServer, type Server as HttpServer, type ServerOptions } from 'node:http';
import { createServer as createHttp2Server, type Http2Server, type Http2Session } from 'node:http2';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type SecureContextOptions, type Server as TlsServer, type TlsOptions } from 'node:tls';
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

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n');

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

/** One listener: the front server and the two protocol servers behind it. */
export class ProxyListener {
  readonly http1: HttpServer;
  readonly http2: Http2Server;
  readonly front: NetServer | TlsServer;
  private readonly sessions = new Set<Http2Session>();

  constructor(onRequest: RequestListener, onUpgrade: UpgradeListener, tls?: TlsOptions) {
    this.http1 = createHttpServer(SERVER_OPTIONS, onRequest as never) as unknown as HttpServer;
    this.http1.on('clientError', onClientError);
    this.http1.on('upgrade', onUpgrade);
    this.http2 = createHttp2Server({ maxSessionMemory: 64 }, onRequest as never);
    this.http2.setTimeout(0);
    this.http2.on('session', (session: Http2Session) => {
      this.sessions.add(session);
      session.on('close', () => this.sessions.delete(session));
      session.on('error', () => session.destroy());
    });
    if (tls) {
      // noDelay: a response written as two TLS records must not wait for the peer's delayed ACK.
      this.front = createTlsServer({ ...tls, ALPNProtocols: ['h2', 'http/1.1'], noDelay: true }, (socket) => {
        (socket.alpnProtocol === 'h2' ? this.http2 : this.http1).emit('connection', socket);
      });
    } else {
      this.front = createNetServer({ noDelay: true }, (socket) => this.sniff(socket));
    }
  }

  /** HTTP/2 with prior knowledge starts with the connection preface; anything else is HTTP/1.x. */
  private sniff(socket: Socket): void {
    socket.once('data', (chunk: Buffer) => {
      socket.pause();
      socket.unshift(chunk);
      const h2 = chunk.length >= 3 && chunk.compare(H2_PREFACE, 0, Math.min(chunk.length, H2_PREFACE.length), 0, Math.min(chunk.length, H2_PREFACE.length)) === 0;
      if (h2) {
        // The session reads the unshifted preface itself (on the next tick); flowing now would lose it.
        this.http2.emit('connection', socket);
      } else {
        this.http1.emit('connection', socket);
        socket.resume();
      }
    });
    socket.on('error', () => socket.destroy());
  }

  on(event: 'tlsClientError', listener: (err: Error & { code?: string }, socket: Socket) => void): void {
    this.front.on(event, listener);
  }

  setSecureContext(options: SecureContextOptions): void {
    (this.front as TlsServer).setSecureContext?.(options);
  }

  closeIdleConnections(): void {
    this.http1.closeIdleConnections();
    for (const s of this.sessions) s.close();
  }

  /** Stops accepting and closes every connection. */
  close(): void {
    this.front.close();
    this.http1.closeAllConnections();
    for (const s of this.sessions) s.destroy();
  }

  listen(port: number, host: string): Promise<void> {
    return listen(this.front, port, host);
  }
}

export function listen(server: NetServer | HttpServer, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
