/**
 * A retried 5xx from an HTTP/1.1 endpoint keeps its keep-alive connection when the rest of
 * its answer is small: the sidecar reads it off instead of closing, so a flapping upstream
 * does not cost a new TCP connection per retried answer. A large answer or one delimited by
 * the close still costs one (its connection is cut), and the retry still succeeds.
 */
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { echoHandler, Processes, startRawUpstream, startUpstream, type Handler, type RawUpstream, type TestUpstream } from '../support/index.js';
import { startOutbound } from './resilience-fixture.js';

const procs = new Processes();
const closers: (() => Promise<void>)[] = [];

afterEach(async () => {
  await procs.killAll();
  await Promise.all(closers.splice(0).map((close) => close()));
});

const REQUESTS = 10;
const policy = { retries: { attempts: 2, on: ['gateway-error' as const], backoff: { base: '1ms', max: '5ms' } } };

/** An endpoint answering every odd request with `first` and every even one with a 200, counting the connections it accepts. */
async function flapping(first: Handler): Promise<{ upstream: TestUpstream; connections: () => number }> {
  let n = 0;
  const ok = echoHandler('catalog');
  const upstream = await startUpstream((req, res) => (++n % 2 === 1 ? first(req, res) : ok(req, res)));
  closers.push(() => upstream.close());
  let connections = 0;
  upstream.server.on('connection', () => connections++);
  return { upstream, connections: () => connections };
}

/** `REQUESTS` requests through a `web` sidecar to `port`, one at a time, each of which must come back 200 after one retry. */
async function callThrough(port: number): Promise<void> {
  const web = await startOutbound(procs, { version: '1', services: { catalog: { ...policy, endpoints: [{ address: '127.0.0.1', port, labels: { version: 'v1' } }] } } });
  closers.push(() => web.app.close());
  for (let i = 0; i < REQUESTS; i++) {
    const r = await web.call(`/items/${i}`);
    expect(r.status, r.body).toBe(200);
  }
}

// Each 503 comes whole in one write, read with its head: its connection is free again before
// the retry asks for one. (One whose rest comes later is drained as it comes, its connection
// busy until then: http1/client.test.ts.)
const lengthBody = (bytes: number): Handler => (_req, res) => {
  res.writeHead(503, { 'content-type': 'text/plain', 'content-length': bytes });
  res.end('x'.repeat(bytes));
};

const chunkedBody: Handler = (_req, res) => {
  res.writeHead(503, { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' });
  res.end('overloaded, try again');
};

describe('a retried HTTP/1.1 5xx', () => {
  it.each([
    ['with a small content-length body', lengthBody(100)],
    ['with a small chunked body', chunkedBody],
  ])('%s keeps its connection: every try of every request goes over one', async (_, first) => {
    const app = await flapping(first);
    await callThrough(app.upstream.port);
    expect(app.upstream.requests.length).toBe(2 * REQUESTS);
    expect(app.connections()).toBe(1);
  });

  it('with a body past 64 KiB cuts its connection, and the retry still succeeds', async () => {
    const app = await flapping(lengthBody(256 * 1024));
    await callThrough(app.upstream.port);
    expect(app.upstream.requests.length).toBe(2 * REQUESTS);
    // Each 503 closes the connection it came on; each 200's is kept for the next request's 503.
    expect(app.connections()).toBe(REQUESTS + 1);
  });

  it('delimited by the close of its connection cuts it, and the retry still succeeds', async () => {
    let answered = 0;
    let connections = 0;
    const raw: RawUpstream = await startRawUpstream((socket: Socket) => {
      connections++;
      socket.setEncoding('latin1');
      socket.on('data', () => {
        if (++answered % 2 === 1) {
          // No content-length, not chunked, keep-alive not refused: the body runs to the close.
          socket.write('HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\r\noverloaded');
          return;
        }
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      });
    });
    closers.push(() => raw.close());
    await callThrough(raw.port);
    expect(answered).toBe(2 * REQUESTS);
    expect(connections).toBe(REQUESTS + 1);
  });
});

describe('the keep-alive race with an HTTP/1.1 endpoint', () => {
  it('an idempotent request the endpoint drops on a reused connection goes once more on a new one, with no retry policy; a POST does not', async () => {
    const requests: string[] = [];
    let connections = 0;
    // Each connection answers its first request and is dropped on its second, unanswered: the
    // endpoint's idle timeout closing it just as the sidecar reuses it.
    const raw: RawUpstream = await startRawUpstream((socket: Socket) => {
      connections++;
      let seen = 0;
      socket.setEncoding('latin1');
      socket.on('data', (d: string) => {
        requests.push(d.split('\r\n')[0]!);
        if (seen++ === 0) socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
        else socket.destroy();
      });
    });
    closers.push(() => raw.close());
    const web = await startOutbound(procs, { version: '1', services: { catalog: { retries: { attempts: 0 }, endpoints: [{ address: '127.0.0.1', port: raw.port, labels: {} }] } } });
    closers.push(() => web.app.close());
    for (let i = 0; i < 4; i++) {
      const r = await web.call(`/items/${i}`);
      expect(r.status, r.body).toBe(200);
    }
    // Requests 1 to 3 each met a dropped connection and went again on a new one.
    expect(requests).toEqual(['GET /items/0 HTTP/1.1', 'GET /items/1 HTTP/1.1', 'GET /items/1 HTTP/1.1', 'GET /items/2 HTTP/1.1', 'GET /items/2 HTTP/1.1', 'GET /items/3 HTTP/1.1', 'GET /items/3 HTTP/1.1']);
    expect(connections).toBe(4);
    const post = await web.call('/orders', { method: 'POST', body: 'x' });
    expect(post.status).toBe(503);
    expect(post.headers['x-skein-reason']).toBe('retries-exhausted');
    expect(requests.at(-1)).toBe('POST /orders HTTP/1.1');
    expect(requests.filter((r) => r.startsWith('POST'))).toHaveLength(1);
  });
});
