/**
 * A route rule's rewrite and header changes on a gRPC (HTTP/2) call, through an mTLS sidecar
 * pair to an h2c app: the app gets the rewritten `:path` and `:authority` and the changed
 * metadata, and the caller the changed answer head, with the call's status untouched.
 */
import { createServer as createH2Server, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { Processes } from '../support/index.js';
import { grpcAnswerHead, grpcFrame, startH2cGrpcPair } from './grpc-fixture.js';

const procs = new Processes();
let app: Http2Server | undefined;

afterAll(async () => {
  await procs.killAll();
  await new Promise((resolve) => (app ? app.close(resolve) : resolve(undefined)));
});

/** An h2c app answering every call with one message and OK, telling in its head what it received. */
async function echoingApp(): Promise<number> {
  app = createH2Server();
  app.on('session', (session) => session.on('error', () => {}));
  app.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    stream.resume();
    const seen = (name: string) => String(headers[name] ?? '');
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', server: 'catalog-app', 'x-seen-path': seen(':path'), 'x-seen-authority': seen(':authority'), 'x-seen-api': seen('x-api'), 'x-seen-debug': seen('x-debug') }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(grpcFrame('ok'));
  });
  await new Promise<void>((resolve) => app!.listen(0, '127.0.0.1', resolve));
  return (app.address() as AddressInfo).port;
}

describe('route changes on gRPC', () => {
  it('rewrites the :path and :authority, changes the metadata both ways, and keeps the status', async () => {
    const pair = await startH2cGrpcPair(procs, await echoingApp(), {}, {}, [
      {
        match: { pathPrefix: '/old.Echo/' },
        rewrite: { pathPrefix: '/test.Echo/', host: 'catalog.internal' },
        requestHeaders: { set: { 'x-api': 'v2' }, remove: ['x-debug'] },
        responseHeaders: { set: { 'cache-control': 'no-store' }, remove: ['server'] },
      },
      { match: { pathPrefix: '/' } },
    ]);
    const port = pair.web.outboundPort;
    const changed = await grpcAnswerHead(port, 'catalog', '/old.Echo/Echo', { 'x-api': 'v1', 'x-debug': '1' });
    expect([changed[':status'], changed['grpc-status']]).toEqual([200, '0']);
    expect([changed['x-seen-path'], changed['x-seen-authority'], changed['x-seen-api'], changed['x-seen-debug']]).toEqual(['/test.Echo/Echo', 'catalog.internal', 'v2', '']);
    expect([changed['cache-control'], changed.server]).toEqual(['no-store', undefined]);

    const plain = await grpcAnswerHead(port, 'catalog', '/test.Echo/Echo', { 'x-api': 'v1', 'x-debug': '1' });
    expect([plain['x-seen-path'], plain['x-seen-authority'], plain['x-seen-api'], plain['x-seen-debug'], plain.server, plain['cache-control']]).toEqual(['/test.Echo/Echo', 'catalog', 'v1', '1', 'catalog-app', undefined]);
  }, 30_000);
});
