/**
 * A real HTTP server that answers a sidecar's Consul calls the way a test needs an agent to
 * behave and a real one never does on cue (e.g. hold the deregistration). Tests that need
 * Consul itself use test/support/consul.ts.
 *
 * It registers (PUT 200), answers each first read (the instance once registered, no
 * endpoints) and holds every blocking read (`index`/`hash`), so the sidecar settles quietly.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ScriptedConsulAgent {
  readonly url: string;
  /** Paths of the PUTs received, in order, and their bodies. */
  readonly puts: { readonly path: string; readonly body: string }[];
  /** Every request, `METHOD path` in order of arrival. */
  readonly requests: string[];
  /** Client connections open now, and the most open when a request arrived. */
  readonly connections: { readonly open: number; readonly peak: number };
  close(): Promise<void>;
}

export interface ScriptedConsulAgentOptions {
  /** Holds the PUTs to paths it accepts unanswered. */
  readonly holdPut?: (path: string) => boolean;
  /** While it returns true the agent accepts connections and answers nothing (a hung agent: SIGSTOP, a half-dead host). */
  readonly hung?: () => boolean;
  /** While it returns true the agent answers every read of a registration 404, registered or not (an agent that keeps losing it). */
  readonly forgets?: () => boolean;
}

export async function startScriptedConsulAgent(options: ScriptedConsulAgentOptions = {}): Promise<ScriptedConsulAgent> {
  const held: ServerResponse[] = [];
  const puts: { path: string; body: string }[] = [];
  const requests: string[] = [];
  const connections = { open: 0, peak: 0 };
  const registered = (): boolean => puts.some((p) => p.path === '/v1/agent/service/register');
  const answer = (req: IncomingMessage, res: ServerResponse, body: string): void => {
    const path = req.url!.split('?')[0]!;
    requests.push(`${req.method} ${path}`);
    // Counted here, not on accept: in one process, a connection the client just dropped may
    // close only after the next one is accepted, which would count both for a moment.
    connections.peak = Math.max(connections.peak, connections.open);
    if (options.hung?.()) return void held.push(res);
    if (req.method === 'PUT') {
      puts.push({ path, body });
      if (options.holdPut?.(path)) return void held.push(res);
      return void res.writeHead(200, { 'content-type': 'application/json' }).end('true');
    }
    const agentService = path.startsWith('/v1/agent/service/');
    // A blocking read of an instance the agent does not know is answered at once, as Consul does.
    if (agentService && options.forgets?.()) return void res.writeHead(404).end('unknown service');
    if (/[?&](index|hash)=/.test(req.url!)) return void held.push(res);
    if (agentService) {
      if (!registered()) return void res.writeHead(404).end('unknown service');
      return void res.writeHead(200, { 'content-type': 'application/json', 'x-consul-contenthash': 'h1' }).end('{}');
    }
    res.writeHead(200, { 'content-type': 'application/json', 'x-consul-index': '1' }).end('[]');
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => answer(req, res, Buffer.concat(chunks).toString()));
  });
  server.on('connection', (socket) => {
    connections.open++;
    socket.on('close', () => connections.open--);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    puts,
    requests,
    connections,
    async close() {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
