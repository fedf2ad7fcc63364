import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EarlyBytes } from './early-bytes.js';

let server: Server | undefined;
const clients: Socket[] = [];

afterEach(async () => {
  // Served sockets too: one paused with unread bytes never sees its client's FIN, and the server would never close.
  for (const c of clients.splice(0)) c.destroy();
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

/** A server-side socket paused as the HTTP/1.1 server hands an upgrade's over, and its client. */
async function pair(): Promise<{ served: Socket; client: Socket }> {
  const served = new Promise<Socket>((resolve) => {
    server = createServer((socket) => {
      clients.push(socket);
      socket.pause();
      resolve(socket);
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const client = connect({ port: (server!.address() as { port: number }).port, host: '127.0.0.1' });
  client.on('error', () => undefined);
  clients.push(client);
  return { served: await served, client };
}

const sent = (client: Socket, data: string | Buffer): Promise<void> => new Promise((resolve) => client.write(data, () => resolve()));
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 50));

describe('EarlyBytes', () => {
  it('sees a client that sent bytes and left (a paused socket would not)', async () => {
    const { served, client } = await pair();
    new EarlyBytes(served, Buffer.alloc(0));
    const closed = new Promise((resolve) => served.on('close', resolve));
    await sent(client, 'early');
    client.end();
    await closed;
  });

  it('returns the head and what came after it, once, and leaves the socket paused for the next reader', async () => {
    const { served, client } = await pair();
    const early = new EarlyBytes(served, Buffer.from('head '));
    await sent(client, 'and more');
    await settle();
    expect(early.stop().toString()).toBe('head and more');
    expect(early.stop()).toHaveLength(0);
    expect(served.isPaused()).toBe(true);
    expect(served.listenerCount('data')).toBe(0);
    // What comes now is the next reader's.
    await sent(client, 'later');
    const later = new Promise<string>((resolve) => served.once('data', (d: Buffer) => resolve(d.toString())));
    served.resume();
    expect(await later).toBe('later');
  });

  it('stops reading past its bound, leaving the rest to TCP', async () => {
    const { served, client } = await pair();
    const early = new EarlyBytes(served, Buffer.alloc(0));
    await sent(client, Buffer.alloc(64 * 1024));
    await settle();
    expect(served.isPaused()).toBe(true);
    expect(early.stop()).toHaveLength(64 * 1024);
  });

  it('reads nothing more when its head is at the bound already', async () => {
    const { served, client } = await pair();
    const early = new EarlyBytes(served, Buffer.alloc(64 * 1024));
    await sent(client, 'more');
    await settle();
    expect(served.isPaused()).toBe(true);
    expect(early.stop()).toHaveLength(64 * 1024);
  });
});
