/**
 * (D) the Node pipe pair (bench/lib/node-pipe-proxy.ts): two Node processes relaying bytes
 * over mTLS with no HTTP at all. Not run by default (`--only ...,node-pipe`); it shows how
 * much of (C)'s cost is Node's sockets and TLS rather than Skein's own work.
 */
import type { ChildProcesses } from '../lib/children.js';
import type { BenchIdentities } from '../lib/identities.js';
import { NODE_PIPE_PROXY_SCRIPT } from '../lib/node-pipe-proxy.js';
import type { Target } from './target.js';

export interface NodePipePairOptions {
  readonly upstreamPort: number;
  /** [outbound listen, inbound listen] */
  readonly ports: readonly [number, number];
  readonly identities: BenchIdentities;
}

export function startNodePipePair(children: ChildProcesses, o: NodePipePairOptions): Target {
  const script = NODE_PIPE_PROXY_SCRIPT;
  const [outPort, inPort] = o.ports;
  const { client, server, caFile } = o.identities;
  const inbound = children.spawn('node-pipe-in', process.execPath, [script, 'in', String(inPort), String(o.upstreamPort)], {
    env: { CERT: server.certFile, KEY: server.keyFile, CA: caFile },
  });
  const outbound = children.spawn('node-pipe-out', process.execPath, [script, 'out', String(outPort), String(inPort)], {
    env: { CERT: client.certFile, KEY: client.keyFile, CA: caFile },
  });
  return {
    name: 'node-pipe',
    label: '(D) Node pipe pair (no HTTP, mTLS)',
    url: `http://127.0.0.1:${outPort}/`,
    proxies: [
      { role: 'outbound', pids: () => [outbound.pid] },
      { role: 'inbound', pids: () => [inbound.pid] },
    ],
    children: [outbound, inbound],
    notes: [`(D) relays bytes only (one TLS connection per client connection, no HTTP parsing, routing or telemetry): the floor of a Node proxy pair with mTLS here`],
  };
}
