/**
 * Upgrades (WebSocket and other `Connection: Upgrade` requests) pass through as a raw byte
 * splice: the request head is rewritten (hop headers, trace headers) and sent on a fresh
 * connection to the chosen endpoint, and from then on bytes flow both ways untouched,
 * including the endpoint's `101 Switching Protocols`.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Exchange } from '../exchange.js';
import { socketReply } from './reply.js';

/** Opens a connection to an endpoint (TLS to a peer sidecar, or plain). */
export type Connector = (service: string, address: string, port: number) => Socket;

/** `ex` has decoded headers and stamped trace headers; the Upgrade header is added back here. */
export function spliceUpgrade(ex: Exchange, client: Socket, head: Buffer, upstream: Socket): void {
  const connectEvent = (upstream as TLSSocket).encrypted ? 'secureConnect' : 'connect';
  let lines = `${ex.method} ${ex.url} HTTP/1.1\r\n`;
  const headers = ex.headers;
  for (let i = 0; i < headers.length; i += 2) lines += `${headers[i]}: ${headers[i + 1]}\r\n`;
  lines += `connection: upgrade\r\nupgrade: ${ex.upgrade}\r\n\r\n`;
  let connected = false;
  upstream.setNoDelay(true);
  client.setNoDelay(true);
  upstream.once(connectEvent, () => {
    connected = true;
    ex.finish(101);
    upstream.write(lines);
    if (head.length > 0) upstream.write(head);
    upstream.pipe(client);
    client.pipe(upstream);
  });
  upstream.on('error', (err: Error & { code?: string }) => {
    if (connected) client.destroy();
    else {
      socketReply(client, 503, 'Service Unavailable', 'upstream-connect-failure', `could not connect for upgrade: ${err.code ?? err.message}`);
      ex.finish(503);
    }
  });
  client.on('error', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
  client.on('close', () => {
    upstream.destroy();
    // The exchange's response object never met a socket; its close ends the in-flight count.
    ex.res.emit('close');
  });
}
