/**
 * Callers that give a TLS handshake up part way, on raw sockets: a port scan or TCP probe
 * that closes before sending anything, and a client that closes or resets the connection
 * once the server has answered its ClientHello.
 */
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/** The first flight of node's TLS client: its ClientHello, as a caller would send it. */
export async function clientHello(): Promise<Buffer> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = tlsConnect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, rejectUnauthorized: false });
  client.on('error', () => {});
  const [socket] = await accepted;
  const [hello] = (await once(socket, 'data')) as [Buffer];
  client.destroy();
  socket.destroy();
  server.close();
  return hello;
}

/**
 * Connects to `port` and ends the connection by `how`: a close (FIN) or a reset (RST). With
 * `hello`, that is sent first and the end waits for the server's first answer, so it comes
 * mid-handshake; without, nothing is sent. Resolves once the socket is closed.
 */
export async function abandonHandshake(port: number, how: 'close' | 'reset', hello?: Buffer): Promise<void> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  await once(socket, 'connect');
  if (hello !== undefined) {
    socket.write(hello);
    await once(socket, 'data');
  }
  const closed = once(socket, 'close');
  if (how === 'close') socket.end();
  else socket.resetAndDestroy();
  await closed;
}
