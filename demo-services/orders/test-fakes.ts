/** A scripted HTTP service for the orders unit tests: answers each call from a queue of statuses. */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { once } from 'node:events';

export interface Recorded {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: unknown;
}

export class ScriptedService {
  readonly calls: Recorded[] = [];
  /** Statuses to answer with, in order (with extra headers, e.g. a sidecar's x-skein-reason); when empty, `fallback`. */
  readonly script: (number | { status: number; headers: Record<string, string> })[] = [];
  fallback = 200;
  /** Answer this much later, to hold a call in flight. */
  delayMs = 0;
  private readonly server: Server;

  constructor(private readonly answer: (call: Recorded) => unknown = () => ({ ok: true })) {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        const call = { method: req.method!, path: req.url!, headers: req.headers, body: text ? JSON.parse(text) : undefined };
        this.calls.push(call);
        const next = this.script.shift() ?? this.fallback;
        const { status, headers } = typeof next === 'number' ? { status: next, headers: {} } : next;
        const body = status < 300 ? this.answer(call) : { error: { code: 'scripted', message: `scripted ${status}` } };
        setTimeout(() => res.writeHead(status, { ...headers, 'content-type': 'application/json' }).end(JSON.stringify(body)), this.delayMs);
      });
    });
  }

  async start(): Promise<string> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return `127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}
