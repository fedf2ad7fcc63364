/**
 * One side of the (D) Node pipe pair: the least a Node proxy with mTLS can do per request.
 * It parses nothing and relays bytes both ways, each client connection on its own TLS
 * connection to the other side (as nginx keeps one upstream connection per request in flight).
 * Its added latency is the floor of Node's sockets and TLS on this machine, to read Skein's
 * (C) against (README, Benchmarks).
 *
 *   node node-pipe-proxy.js out LISTEN_PORT PEER_PORT   plain in, mTLS out (env CERT KEY CA)
 *   node node-pipe-proxy.js in LISTEN_PORT APP_PORT     mTLS in (client certificate required), plain out
 */
import { readFileSync } from 'node:fs';
import { connect as netConnect, createServer as createNetServer, type Socket } from 'node:net';
import { connect as tlsConnect, createSecureContext, createServer as createTlsServer } from 'node:tls';
import { pathToFileURL } from 'node:url';
import { compiledScript } from './children.js';

function relay(a: Socket, b: Socket): void {
  a.pipe(b);
  b.pipe(a);
  a.on('error', () => b.destroy());
  b.on('error', () => a.destroy());
  a.on('close', () => b.destroy());
  b.on('close', () => a.destroy());
}

function main(role: string | undefined, listenPort: number, targetPort: number): void {
  const file = (name: string): Buffer => readFileSync(process.env[name]!);
  const ca = file('CA');
  if (role === 'out') {
    const context = createSecureContext({ cert: file('CERT'), key: file('KEY'), ca });
    createNetServer({ noDelay: true }, (client) => {
      // The bench's certificates name services, not 127.0.0.1: the chain is still verified against the CA.
      relay(client, tlsConnect({ host: '127.0.0.1', port: targetPort, secureContext: context, checkServerIdentity: () => undefined }).setNoDelay(true));
    }).listen(listenPort, '127.0.0.1');
  } else if (role === 'in') {
    createTlsServer({ cert: file('CERT'), key: file('KEY'), ca, requestCert: true, rejectUnauthorized: true, noDelay: true }, (peer) => {
      relay(peer, netConnect({ host: '127.0.0.1', port: targetPort, noDelay: true }));
    }).listen(listenPort, '127.0.0.1');
  } else {
    process.stderr.write(`usage: node-pipe-proxy.js out|in LISTEN_PORT TARGET_PORT (got ${role})\n`);
    process.exit(2);
  }
}

/** The compiled script to run as a child process. */
export const NODE_PIPE_PROXY_SCRIPT = compiledScript(import.meta.url);

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv[2], Number(process.argv[3]), Number(process.argv[4]));
}
