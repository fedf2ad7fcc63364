import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { socketReply } from './reply.js';

let server: Server | undefined;

afterEach(async () => {
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

describe('socketReply', () => {
  it('writes the standard reason phrase in the status line, whatever the x-skein-reason', async () => {
    const statuses = [404, 403, 503, 504, 431];
    let next = 0;
    server = createServer((socket) => socketReply(socket, statuses[next++]!, 'no-route'));
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const lines: string[] = [];
    for (const _ of statuses) {
      const client = connect({ port, host: '127.0.0.1' });
      let answer = '';
      client.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
      await new Promise((resolve) => client.on('close', resolve));
      lines.push(answer.slice(0, answer.indexOf('\r\n')));
    }
    expect(lines).toEqual(['HTTP/1.1 404 Not Found', 'HTTP/1.1 403 Forbidden', 'HTTP/1.1 503 Service Unavailable', 'HTTP/1.1 504 Gateway Timeout', 'HTTP/1.1 431 Request Header Fields Too Large']);
  });

  it('answers, then cuts a client that keeps trickling bytes after 5 s instead of reading from it for ever', async () => {
    server = createServer((socket) => socketReply(socket, 400, 'bad-request', 'test'));
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const client: Socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let answer = '';
    client.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
    client.on('error', () => undefined);
    const startedAt = Date.now();
    const closed = new Promise<number>((resolve) => client.on('close', () => resolve(Date.now() - startedAt)));
    // A byte every 300 ms: a timeout that every byte restarts would never fire.
    const trickle = setInterval(() => client.writable && client.write('x'), 300);
    try {
      const after = await Promise.race([closed, new Promise<number>((resolve) => setTimeout(() => resolve(-1), 9000))]);
      expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*x-skein-reason: bad-request/);
      expect(after).toBeGreaterThan(4000);
      expect(after).toBeLessThan(8000);
    } finally {
      clearInterval(trickle);
      client.destroy();
    }
  }, 15_000);
});
