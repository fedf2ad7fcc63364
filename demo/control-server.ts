/**
 * The running demo's own endpoint on 127.0.0.1, so scenarios (separate `skein demo scenario`
 * processes) can stop, crash and restart instances the orchestrator owns, and a Ctrl-C still
 * stops every one of them:
 *
 *   GET  /state                      the demo's state (as in demo.json)
 *   POST /instances/{id}/stop|kill   SIGTERM (sidecar drains first) | SIGKILL app and sidecar
 *   POST /instances/{id}/start       start it again on its ports; answers once it is ready
 *   POST /stop                       stop the whole demo (as Ctrl-C does)
 *
 * Every request needs `Authorization: Bearer <admin token>`: the state holds the admin token
 * (demo.json, where callers find this endpoint, is mode 0600 for that reason), so it is no
 * more readable here than there by another user of this machine.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { DemoState } from './state.js';

export interface DemoControl {
  state(): DemoState;
  stopInstance(id: string, how: 'stop' | 'kill'): Promise<void>;
  startInstance(id: string): Promise<void>;
}

const ERRORS: Readonly<Record<string, readonly [number, string]>> = {
  UnknownInstanceError: [404, 'unknown-instance'],
  InstanceRunningError: [409, 'instance-running'],
};

export class ControlServer {
  private readonly server: Server;
  private port = 0;
  /** Called after POST /stop has been answered. */
  onStopRequested: () => void = () => {};

  constructor(
    private readonly demo: DemoControl,
    private readonly adminToken: string,
  ) {
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as { port: number }).port;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private authorized(req: IncomingMessage): boolean {
    const given = Buffer.from(req.headers.authorization ?? '');
    const wanted = Buffer.from(`Bearer ${this.adminToken}`);
    return given.length === wanted.length && timingSafeEqual(given, wanted);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const fail = (status: number, code: string, message: string) => reply(status, { error: { code, message } });
    req.resume();
    const path = new URL(req.url ?? '/', 'http://demo').pathname;
    if (!this.authorized(req)) return fail(401, 'unauthorized', 'send Authorization: Bearer <admin token>');
    if (req.method === 'GET' && path === '/state') return reply(200, this.demo.state());
    if (req.method !== 'POST') return fail(404, 'not-found', `no ${req.method} ${path} (GET /state, POST /instances/{id}/stop|kill|start, POST /stop)`);
    if (path === '/stop') {
      reply(202, { stopping: true });
      this.onStopRequested();
      return;
    }
    const m = /^\/instances\/([a-z0-9-]+)\/(stop|kill|start)$/.exec(path);
    if (!m) return fail(404, 'not-found', `no POST ${path}`);
    const [, id, action] = m as unknown as [string, string, 'stop' | 'kill' | 'start'];
    try {
      if (action === 'start') await this.demo.startInstance(id);
      else await this.demo.stopInstance(id, action);
      reply(200, this.demo.state().instances.find((i) => i.id === id));
    } catch (err) {
      const [status, code] = ERRORS[(err as Error).name] ?? [500, 'internal'];
      fail(status, code, (err as Error).message);
    }
  }
}
