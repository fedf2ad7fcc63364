import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export interface RecordedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
}

export interface TestUpstream {
  readonly port: number;
  readonly url: string;
  /** Every request this server received, in arrival order. */
  readonly requests: RecordedRequest[];
  readonly server: Server;
  close(): Promise<void>;
}

/** Answers `200 {"name": <name>, "path": <url>}` and `/health` with 200. */
export function echoHandler(name: string): Handler {
  return (req, res) => {
    const body = JSON.stringify({ name, method: req.method, path: req.url, headers: req.headers });
    res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': name });
    res.end(body);
  };
}

/**
 * Starts an HTTP server on 127.0.0.1, port 0, with `handler` (default: echoHandler('upstream'))
 * and node:http's `options` (`maxHeaderSize` for an app taking heads past node's 16 KiB).
 * `close()` also destroys kept-alive sockets so it never hangs.
 */
export async function startUpstream(handler: Handler = echoHandler('upstream'), options: ServerOptions = {}): Promise<TestUpstream> {
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const server = createServer(options, (req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    handler(req, res);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  const port = await listen(server);
  return { port, url: `http://127.0.0.1:${port}`, requests, server, close: () => closeAll(server, sockets) };
}

export interface RawUpstream {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Starts a raw TCP app on 127.0.0.1, port 0, for answers node:http would never write (bytes
 * framed by hand, malformed ones): `onSocket` gets each connection, whose errors are ignored.
 * `close()` also destroys open sockets so it never hangs.
 */
export async function startRawUpstream(onSocket: (socket: Socket) => void): Promise<RawUpstream> {
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onSocket(socket);
  });
  return { port: await listen(server), close: () => closeAll(server, sockets) };
}

async function listen(server: Server | TcpServer): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port assigned');
  return address.port;
}

function closeAll(server: Server | TcpServer, sockets: Set<Socket>): Promise<void> {
  return new Promise<void>((resolve) => {
    for (const socket of sockets) socket.destroy();
    server.close(() => resolve());
  });
}
