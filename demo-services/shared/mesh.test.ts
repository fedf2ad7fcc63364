import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createH2Server, type Http2Server } from 'node:http2';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { CatalogClient } from '../catalog/client.js';
import { answerError, Mesh } from './mesh.js';
import { UpstreamError } from './http-errors.js';

let closers: (() => unknown)[] = [];
afterEach(async () => {
  await Promise.all(closers.map((c) => c()));
  closers = [];
});

/** A stand-in for the sidecar's outbound listener that records what it was sent. */
async function fakeOutbound(): Promise<{ url: string; seen: IncomingHttpHeaders[] }> {
  const seen: IncomingHttpHeaders[] = [];
  const server: Server = createServer((req, res) => {
    seen.push(req.headers);
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(() => new Promise((r) => server.close(r)));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, seen };
}

describe('Mesh', () => {
  it('sends HTTP to the outbound listener with Host naming the service, and forwards trace headers', async () => {
    const outbound = await fakeOutbound();
    const mesh = new Mesh({ SKEIN_OUTBOUND: outbound.url });
    closers.push(() => mesh.close());
    const answer = await mesh.http('inventory').call('GET', '/stock', { trace: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' } });
    expect(answer).toMatchObject({ status: 200, body: { ok: true } });
    expect(outbound.seen[0]!.host).toBe('inventory');
    expect(outbound.seen[0]!.traceparent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
  });

  it('goes straight to the service when DEMO_DIRECT_<SERVICE> is set (tests only)', async () => {
    const direct = await fakeOutbound();
    const mesh = new Mesh({ SKEIN_OUTBOUND: 'http://127.0.0.1:1', DEMO_DIRECT_INVENTORY: direct.url.replace('http://', '') });
    closers.push(() => mesh.close());
    await mesh.http('inventory').call('GET', '/stock');
    expect(direct.seen[0]!.host).toBe(direct.url.replace('http://', ''));
    expect(mesh.destination('payments')).toEqual({ origin: 'http://127.0.0.1:1', authority: 'payments' });
  });

  it('turns a call that gets no answer into an upstream-unavailable error naming the service', async () => {
    const mesh = new Mesh({ SKEIN_OUTBOUND: 'http://127.0.0.1:1' });
    closers.push(() => mesh.close());
    await expect(mesh.http('payments').call('GET', '/health')).rejects.toMatchObject({ status: 503, code: 'upstream-unavailable', message: expect.stringContaining('payments') });
  });

  it('dials gRPC through the outbound listener with :authority set to the service name', async () => {
    const authorities: string[] = [];
    const server: Http2Server = createH2Server((req, res) => {
      authorities.push(req.headers[':authority'] as string);
      res.writeHead(200, { 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': 'fake' }).end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    closers.push(() => new Promise((r) => server.close(r)));
    const mesh = new Mesh({ SKEIN_OUTBOUND: `http://127.0.0.1:${(server.address() as { port: number }).port}` });
    const client = new CatalogClient(mesh);
    closers.push(() => client.close());
    await expect(client.list({})).rejects.toMatchObject({ code: 'upstream-unavailable' });
    expect(authorities).toEqual(['catalog']);
  });
});

describe('answerError', () => {
  const answer = (status: number, reason?: string) => ({ status, headers: reason ? { 'x-skein-reason': reason } : {}, body: undefined });

  it('passes on a request the sidecar refused as malformed as that 4xx, not as the service being down', () => {
    for (const status of [400, 413, 431]) {
      const err = answerError('users', answer(status, 'bad-request'));
      expect(err).not.toBeInstanceOf(UpstreamError);
      expect([err.status, err.code]).toEqual([status, 'bad-request']);
    }
  });

  it("passes on a service's rate limit as 429 rate-limited with the seconds to wait, not as the service being down", () => {
    const err = answerError('catalog', { status: 429, headers: { 'x-skein-reason': 'rate-limited', 'retry-after': '2' }, body: undefined });
    expect(err).not.toBeInstanceOf(UpstreamError);
    expect(err).toMatchObject({ status: 429, code: 'rate-limited', message: 'catalog is over its rate limit: retry after 2s', details: { retryAfterSeconds: 2 }, headers: { 'retry-after': '2' } });
  });

  it('turns the other sidecar-made answers into 503/504 upstream-unavailable naming the service', () => {
    expect(answerError('users', answer(503, 'no-healthy-endpoints'))).toMatchObject({ status: 503, code: 'upstream-unavailable', message: 'users is unavailable: sidecar answered 503 (no-healthy-endpoints)' });
    expect(answerError('users', answer(504, 'timeout'))).toMatchObject({ status: 504, code: 'upstream-unavailable' });
    expect(answerError('users', answer(403, 'denied'))).toMatchObject({ status: 503, code: 'upstream-unavailable' });
  });
});
