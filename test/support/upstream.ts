import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

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
 * Starts an HTTP server on 127.0.0.1, port 0, with `handler` (default: echoHandler('upstream')).
 * `close()` also destroys kept-alive sockets so it never hangs.
 */
export async function startUpstream(handler: Handler = echoHandler('upstream')): Promise<TestUpstream> {
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    handler(req, res);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port assigned');
  const port = address.port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
