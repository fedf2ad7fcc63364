/**
 * An HTTP/2 caller whose request the app answers whole while the caller is still sending its
 * body: the sidecar closes the stream with RST_STREAM NO_ERROR once the answer is out (RFC
 * 9113 §8.1, as Envoy does), so the request stops counting in flight and a drain does not wait
 * its whole timeout for a caller that keeps its stream open.
 */
import { connect, constants, createServer, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { freePorts, Processes, startUpstream, waitUntil, writeTempConfig, type TestUpstream } from '../support/index.js';

describe('HTTP/2 request answered before its body ended', () => {
  const procs = new Processes();
  let app: TestUpstream | undefined;
  let grpcApp: Http2Server | undefined;
  afterAll(async () => {
    await procs.killAll();
    await app?.close();
    await new Promise((resolve) => (grpcApp ? grpcApp.close(resolve) : resolve(undefined)));
  });

  it('gets the whole answer, then its stream closed with NO_ERROR; the drain finds nothing in flight', async () => {
    // Answers at once, whatever of the body has come.
    app = await startUpstream((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('answered early');
    });
    const config = writeTempConfig({ services: { catalog: { timeout: '0s', endpoints: [{ address: '127.0.0.1', port: app.port }] } } });
    const sc = await procs.sidecar({ service: 'web', appPort: app.port, config, drainTimeout: '5s' });
    const session = connect(`http://127.0.0.1:${sc.outboundPort}`);
    session.on('error', () => {});
    const stream = session.request({ ':path': '/early', ':method': 'POST', host: 'catalog' }, { endStream: false });
    stream.on('error', () => {});
    let status = 0;
    let body = '';
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => (body += d));
    const closed = new Promise<number | undefined>((resolve) => stream.on('close', () => resolve(stream.rstCode)));
    stream.write('part of a body that never ends');
    await waitUntil(() => body === 'answered early', { what: 'the whole answer' });
    expect(status).toBe(200);
    expect(await closed).toBe(constants.NGHTTP2_NO_ERROR);
    const drain = await fetch(`${sc.adminUrl}/drain`, { method: 'POST' });
    expect(((await drain.json()) as { inFlight: number }).inFlight).toBe(0);
    const started = performance.now();
    sc.kill('SIGTERM');
    expect((await sc.exited).code).toBe(0);
    // Not the 5 s drain timeout.
    expect(performance.now() - started).toBeLessThan(2_500);
    session.destroy();
  });

  it('a gRPC call ended by one HEADERS frame while the caller still sends (the app\'s trailers-only answer, or the sidecar\'s own after a reset or for no route): the same', async () => {
    // Fails the call at once with UNAVAILABLE, reading none of its body, as a peer sidecar whose
    // app is down answers, or resets it: either answer ends at its head, before the call ends.
    grpcApp = createServer();
    grpcApp.on('stream', (stream, headers) => {
      stream.on('error', () => {});
      if (headers[':path'] === '/test.Echo/Reset') stream.close(constants.NGHTTP2_INTERNAL_ERROR);
      else stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': 'down' }, { endStream: true });
    });
    await new Promise<void>((resolve) => grpcApp!.listen(0, '127.0.0.1', resolve));
    const port = (grpcApp.address() as AddressInfo).port;
    const config = writeTempConfig({ services: { catalog: { protocol: 'grpc', timeout: '0s', endpoints: [{ address: '127.0.0.1', port }] } } });
    // Its health check would ask the app over HTTP/1.1: live is enough for its outbound.
    const sc = await procs.sidecar({ service: 'web', appPort: port, config, drainTimeout: '5s', waitFor: '/live' });
    const session = connect(`http://127.0.0.1:${sc.outboundPort}`);
    session.on('error', () => {});
    const calls = [
      { path: '/test.Echo/Up', host: 'catalog', status: '14' },
      { path: '/test.Echo/Reset', host: 'catalog', status: '14' },
      { path: '/test.Echo/Up', host: 'nowhere', status: '12' },
    ];
    for (const { path, host, status } of calls) {
      const stream = session.request({ ':path': path, ':method': 'POST', host, 'content-type': 'application/grpc', te: 'trailers' }, { endStream: false });
      stream.on('error', () => {});
      const head = new Promise<Record<string, unknown>>((resolve) => stream.on('response', resolve));
      const closed = new Promise<number | undefined>((resolve) => stream.on('close', () => resolve(stream.rstCode)));
      // A message, and the call goes on sending.
      stream.write(Buffer.from([0, 0, 0, 0, 1, 0x2a]));
      expect((await head)['grpc-status'], `${host}${path}`).toBe(status);
      expect(await closed, `${host}${path}`).toBe(constants.NGHTTP2_NO_ERROR);
    }
    const drain = await fetch(`${sc.adminUrl}/drain`, { method: 'POST' });
    expect(((await drain.json()) as { inFlight: number }).inFlight).toBe(0);
    session.destroy();
  });

  it("a plain answer the sidecar makes itself (no endpoint to connect to): the whole answer, ended, before the stream's reset", async () => {
    const [appPort, dead] = await freePorts(2);
    const config = writeTempConfig({ services: { gone: { timeout: '0s', endpoints: [{ address: '127.0.0.1', port: dead! }] } } });
    const sc = await procs.sidecar({ service: 'web', appPort: appPort!, config, drainTimeout: '5s', waitFor: '/live' });
    const session = connect(`http://127.0.0.1:${sc.outboundPort}`);
    session.on('error', () => {});
    const stream = session.request({ ':path': '/upload', ':method': 'POST', host: 'gone' }, { endStream: false });
    stream.on('error', () => {});
    // The order the caller learns things in: its answer's end (END_STREAM), or a reset that came first.
    const events: string[] = [];
    let status = 0;
    let body = '';
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => (body += d));
    stream.on('end', () => events.push('end'));
    stream.on('aborted', () => events.push('aborted'));
    const closed = new Promise<number | undefined>((resolve) => stream.on('close', () => resolve(stream.rstCode)));
    stream.write('part of a body that never ends');
    expect(await closed).toBe(constants.NGHTTP2_NO_ERROR);
    expect(status).toBe(503);
    expect(body).toMatch(/could not connect to gone/);
    expect(events[0]).toBe('end');
    const drain = await fetch(`${sc.adminUrl}/drain`, { method: 'POST' });
    expect(((await drain.json()) as { inFlight: number }).inFlight).toBe(0);
    session.destroy();
  });

  it('a sidecar-made answer before the request is forwarded (no route): the caller still sending is closed the same way', async () => {
    const [appPort] = await freePorts(1);
    const config = writeTempConfig({ services: { catalog: { endpoints: [{ address: '127.0.0.1', port: appPort! }] } } });
    const sc = await procs.sidecar({ service: 'web', appPort: appPort!, config, drainTimeout: '5s', waitFor: '/live' });
    const session = connect(`http://127.0.0.1:${sc.outboundPort}`);
    session.on('error', () => {});
    // Still sending, with and without a body that can come (HEAD); and one whose short body has
    // ended but was never read: its stream must close too, not wait for a reader.
    const calls = [
      { method: 'POST', ends: false, body: /no service named by "nowhere"/ },
      { method: 'HEAD', ends: false, body: /^$/ },
      { method: 'POST', ends: true, body: /no service named by "nowhere"/ },
    ];
    for (const { method, ends, body: expected } of calls) {
      const what = `${method}${ends ? ', ended' : ''}`;
      const stream = session.request({ ':path': '/x', ':method': method, host: 'nowhere' }, { endStream: false });
      stream.on('error', () => {});
      const head = new Promise<Record<string, unknown>>((resolve) => stream.on('response', resolve));
      let body = '';
      stream.setEncoding('utf8');
      stream.on('data', (d: string) => (body += d));
      let code: number | null | undefined = null;
      stream.on('close', () => (code = stream.rstCode));
      if (ends) stream.end('a short body');
      else stream.write('part of a body that never ends');
      expect((await head)[':status'], what).toBe(404);
      expect((await head)['x-skein-reason'], what).toBe('no-route');
      await waitUntil(() => code !== null, { timeoutMs: 5_000, what: `${what}: its stream closed` });
      if (!ends) expect(code, what).toBe(constants.NGHTTP2_NO_ERROR);
      expect(body, what).toMatch(expected);
    }
    const drain = await fetch(`${sc.adminUrl}/drain`, { method: 'POST' });
    expect(((await drain.json()) as { inFlight: number }).inFlight).toBe(0);
    session.destroy();
  });

  it('an answer with no body (an app\'s 204, a HEAD, a sidecar-made answer to a HEAD): closed once its head is out', async () => {
    const noContent = await startUpstream((req, res) => {
      req.resume();
      res.writeHead(req.method === 'HEAD' ? 200 : 204, { 'content-length': req.method === 'HEAD' ? '5' : '0' });
      res.end();
    });
    try {
      const [dead] = await freePorts(1);
      const config = writeTempConfig({
        services: {
          catalog: { timeout: '0s', endpoints: [{ address: '127.0.0.1', port: noContent.port }] },
          gone: { timeout: '0s', endpoints: [{ address: '127.0.0.1', port: dead! }] },
        },
      });
      const sc = await procs.sidecar({ service: 'web', appPort: noContent.port, config, drainTimeout: '5s' });
      const session = connect(`http://127.0.0.1:${sc.outboundPort}`);
      session.on('error', () => {});
      const calls = [
        { method: 'POST', host: 'catalog', status: 204 },
        { method: 'HEAD', host: 'catalog', status: 200 },
        { method: 'HEAD', host: 'gone', status: 503 },
      ];
      for (const { method, host, status } of calls) {
        const stream = session.request({ ':path': '/x', ':method': method, host }, { endStream: false });
        stream.on('error', () => {});
        const head = new Promise<Record<string, unknown>>((resolve) => stream.on('response', resolve));
        const closed = new Promise<number | undefined>((resolve) => stream.on('close', () => resolve(stream.rstCode)));
        stream.resume();
        stream.write('part of a body that never ends');
        expect((await head)[':status'], `${method} ${host}`).toBe(status);
        expect(await closed, `${method} ${host}`).toBe(constants.NGHTTP2_NO_ERROR);
      }
      const drain = await fetch(`${sc.adminUrl}/drain`, { method: 'POST' });
      expect(((await drain.json()) as { inFlight: number }).inFlight).toBe(0);
      session.destroy();
    } finally {
      await noContent.close();
    }
  });
});
