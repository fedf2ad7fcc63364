import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { HttpError } from './http-errors.js';
import { Router } from './http-server.js';

let server: Server;
let base: string;

beforeAll(async () => {
  const router = new Router()
    .add('GET', '/items/:id', ({ params, trace }) => ({ body: { id: params.id, trace } }))
    .add('POST', '/items', async (req) => ({ status: 201, body: { got: await req.json() } }))
    .add('GET', '/teapot', () => {
      throw new HttpError(418, 'teapot', 'short and stout');
    })
    .add('GET', '/slow-down', () => {
      throw new HttpError(429, 'rate-limited', 'wait', undefined, { 'retry-after': '3' });
    })
    .add('GET', '/broken', () => {
      throw new Error('secret internals');
    });
  server = createServer(router.listener(pino({ level: 'silent' })));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise((r) => server.close(r)));

async function call(method: string, path: string, body?: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}${path}`, { method, body, headers });
  return { status: res.status, body: (await res.json()) as any };
}

describe('Router', () => {
  it('matches params (URL-decoded) and hands the handler the trace headers to forward', async () => {
    const res = await call('GET', '/items/a%20b', undefined, { traceparent: 't', 'x-request-id': 'r', cookie: 'no' });
    expect(res).toEqual({ status: 200, body: { id: 'a b', trace: { traceparent: 't', 'x-request-id': 'r' } } });
  });

  it('parses JSON bodies and refuses what is not JSON or too large', async () => {
    expect(await call('POST', '/items', '{"a":1}')).toEqual({ status: 201, body: { got: { a: 1 } } });
    expect((await call('POST', '/items', '{"a":')).body.error.code).toBe('invalid-json');
    const big = await call('POST', '/items', JSON.stringify({ pad: 'x'.repeat(70 * 1024) }));
    expect(big.status).toBe(413);
    expect(big.body.error.code).toBe('body-too-large');
  });

  it('answers unknown paths 404 and wrong methods 405, both as JSON errors', async () => {
    expect(await call('GET', '/nope')).toMatchObject({ status: 404, body: { error: { code: 'not-found' } } });
    expect(await call('DELETE', '/items/1')).toMatchObject({ status: 405, body: { error: { code: 'method-not-allowed' } } });
  });

  it('sends HttpErrors as they are and hides other failures behind a 500', async () => {
    expect(await call('GET', '/teapot')).toEqual({ status: 418, body: { error: { code: 'teapot', message: 'short and stout' } } });
    const broken = await call('GET', '/broken');
    expect(broken).toEqual({ status: 500, body: { error: { code: 'internal', message: 'internal error' } } });
  });

  it("sends an HttpError's header lines with it", async () => {
    const res = await fetch(`${base}/slow-down`);
    expect([res.status, res.headers.get('retry-after'), res.headers.get('content-type')]).toEqual([429, '3', 'application/json; charset=utf-8']);
  });
});

describe('Router at the edge', () => {
  it('starts a trace for a request that brings none, keeps one that comes, and answers traceresponse', async () => {
    const edge = createServer(new Router({ edge: true }).add('GET', '/t', ({ trace }) => ({ body: trace })).listener(pino({ level: 'silent' })));
    edge.listen(0, '127.0.0.1');
    await once(edge, 'listening');
    try {
      const url = `http://127.0.0.1:${(edge.address() as { port: number }).port}/t`;
      const fresh = await fetch(url);
      const started = (await fresh.json()) as { traceparent?: string };
      expect(started.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      expect(fresh.headers.get('traceresponse')).toBe(started.traceparent);
      const other = (await (await fetch(url)).json()) as { traceparent?: string };
      expect(other.traceparent!.slice(3, 35)).not.toBe(started.traceparent!.slice(3, 35));

      const incoming = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
      const kept = await fetch(url, { headers: { traceparent: incoming } });
      expect(await kept.json()).toEqual({ traceparent: incoming });
      const b3 = await fetch(url, { headers: { b3: '4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1' } });
      expect(((await b3.json()) as Record<string, string>).traceparent).toBeUndefined();
    } finally {
      await new Promise((r) => edge.close(r));
    }
  });

  it('only at the edge: an inner service forwards what it got and starts nothing', async () => {
    const res = await fetch(`${base}/items/1`);
    expect(res.headers.get('traceresponse')).toBeNull();
    expect(((await res.json()) as { trace: object }).trace).toEqual({});
  });
});
