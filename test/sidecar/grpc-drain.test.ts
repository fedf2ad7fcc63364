/**
 * Draining with HTTP/2 callers: the sidecar sends GOAWAY on its gRPC connections and lets the
 * streams already open finish; a malformed HTTP/2 client loses only its own connection. A call
 * still unanswered at the drain timeout ends with a status, not a reset.
 */
import * as grpc from '@grpc/grpc-js';
import { connect, type ClientHttp2Session } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Processes, waitUntil, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { grpcClient, rawMethod, startGrpcSidecarPair } from './grpc-fixture.js';

const definition: grpc.ServiceDefinition = { Hold: rawMethod('Hold', true) };

/** One gRPC request on a raw HTTP/2 session; resolves with the response's trailers. */
function call(session: ClientHttp2Session, onData: (chunk: Buffer) => void = () => undefined): Promise<Record<string, unknown>> {
  const req = session.request({ ':method': 'POST', ':path': '/test.Echo/Hold', ':authority': 'catalog', 'content-type': 'application/grpc', te: 'trailers' });
  req.end(Buffer.from([0, 0, 0, 0, 1, 120]));
  return new Promise((resolve, reject) => {
    req.on('trailers', resolve);
    req.on('data', onData);
    req.on('error', reject);
    req.on('close', () => reject(new Error(`stream closed without trailers (rst code ${req.rstCode})`)));
  });
}

describe('gRPC drain and protocol errors', () => {
  const procs = new Processes();
  let server: grpc.Server;
  let webApp: TestUpstream;
  let web: SpawnedSidecar;
  /** Ends the open Hold streams. */
  const release: (() => void)[] = [];

  beforeAll(async () => {
    server = new grpc.Server();
    server.addService(definition, {
      // Sends one message, then holds the stream open until the test releases it.
      Hold: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        call.write(Buffer.from('started'));
        release.push(() => {
          call.write(Buffer.from('last'));
          call.end();
        });
      },
    });
    ({ webApp, web } = await startGrpcSidecarPair(procs, server, { timeout: '0s' }, { drainTimeout: '30s' }));
  });

  afterAll(async () => {
    await procs.killAll();
    server?.forceShutdown();
    await webApp?.close();
  });

  it('answers a malformed HTTP/2 client with a protocol error and keeps other streams going', async () => {
    const session = connect(`http://127.0.0.1:${web.outboundPort}`);
    session.on('error', () => {}); // the call's trailers say whether it failed; a drained connection's reset is not the test's error
    let got = '';
    const done = call(session, (c) => (got += c.toString('latin1')));
    await waitUntil(() => got.includes('started') && release.length === 1, { what: 'the stream to start' });
    // A HEADERS frame on stream 0 is a connection error (RFC 9113 §6.2): the peer must send GOAWAY.
    const bad = netConnect(web.outboundPort, '127.0.0.1');
    const reply: Buffer[] = [];
    bad.on('data', (c: Buffer) => reply.push(c));
    bad.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]), Buffer.from([0, 0, 1, 1, 5, 0, 0, 0, 0, 0x82])]));
    await new Promise<void>((resolve) => bad.on('close', () => resolve()));
    const frames = Buffer.concat(reply);
    const types: number[] = [];
    for (let at = 0; at + 9 <= frames.length; at += 9 + frames.readUIntBE(at, 3)) types.push(frames[at + 3]!);
    expect(types).toContain(7); // GOAWAY
    release.shift()!();
    const trailers = await done;
    expect(trailers['grpc-status']).toBe('0');
    expect(got).toContain('last');
    session.destroy();
  });

  it('sends GOAWAY on drain and lets the active stream finish', async () => {
    const session = connect(`http://127.0.0.1:${web.outboundPort}`);
    session.on('error', () => {}); // the call's trailers say whether it failed; a drained connection's reset is not the test's error
    const goaway = new Promise<void>((resolve) => session.on('goaway', () => resolve()));
    let got = '';
    const done = call(session, (c) => (got += c.toString('latin1')));
    await waitUntil(() => got.includes('started') && release.length === 1, { what: 'the stream to start' });
    const drained = await fetch(`${web.adminUrl}/drain`, { method: 'POST' });
    expect(drained.status).toBe(202);
    await goaway;
    release.shift()!();
    const trailers = await done;
    expect(trailers['grpc-status']).toBe('0');
    expect(got).toContain('last');
    session.destroy();
  });

  it('answers the first stream of a connection opened during the drain, then sends it GOAWAY', async () => {
    // Draining (a drain an earlier test started is joined, not restarted).
    expect((await fetch(`${web.adminUrl}/drain`, { method: 'POST' })).status).toBe(202);
    const session = connect(`http://127.0.0.1:${web.outboundPort}`);
    session.on('error', () => {}); // the call's trailers say whether it failed; a drained connection's reset is not the test's error
    let goneAway = false;
    session.on('goaway', () => (goneAway = true));
    let got = '';
    const done = call(session, (c) => (got += c.toString('latin1')));
    await waitUntil(() => got.includes('started') && release.length === 1, { what: 'the stream to start' });
    await waitUntil(() => goneAway, { what: 'GOAWAY on the connection opened during the drain', timeoutMs: 5_000 });
    release.shift()!();
    expect((await done)['grpc-status']).toBe('0');
    session.destroy();
  });
});

type WaitClient = grpc.Client & { Wait(req: Buffer, cb: (err: grpc.ServiceError | null) => void): void; Hold(req: Buffer): grpc.ClientReadableStream<Buffer> };

describe('gRPC call unanswered at the drain timeout', () => {
  const procs = new Processes();
  const server = new grpc.Server();
  let webApp: TestUpstream | undefined;
  let client: WaitClient | undefined;

  afterAll(async () => {
    client?.close();
    await procs.killAll();
    server.forceShutdown();
    await webApp?.close();
  });

  it('ends with 14 UNAVAILABLE and x-skein-reason: retries-exhausted from the draining sidecar, a stream begun too', async () => {
    let arrived = 0;
    // Never answered; a stream that sent one message and holds.
    const definition: grpc.ServiceDefinition = { Wait: rawMethod('Wait', false), Hold: rawMethod('Hold', true) };
    server.addService(definition, {
      Wait: () => arrived++,
      Hold: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        arrived++;
        call.write(Buffer.from('first'));
      },
    });
    const pair = await startGrpcSidecarPair(procs, server, { timeout: '0s' }, { drainTimeout: '1s' });
    webApp = pair.webApp;
    const called = (client = grpcClient<WaitClient>(definition, pair.web.outboundPort));
    const failed = new Promise<grpc.ServiceError | null>((resolve) => called.Wait(Buffer.from('x'), resolve));
    const messages: string[] = [];
    const stream = called.Hold(Buffer.from('x'));
    stream.on('data', (m: Buffer) => messages.push(m.toString()));
    const streamFailed = new Promise<grpc.ServiceError | null>((resolve) => {
      stream.on('error', resolve);
      stream.on('end', () => resolve(null));
    });
    await waitUntil(() => arrived === 2 && messages.length === 1, { what: 'both calls to reach the app, the stream to begin' });
    pair.web.kill('SIGTERM');
    const err = await failed;
    expect(err?.code, `${err?.message}\n${pair.web.output()}`).toBe(grpc.status.UNAVAILABLE);
    expect(err?.details).toBe('sidecar shutting down: its drain timeout (1s) ran out before catalog answered');
    expect(err?.metadata.get('x-skein-reason')).toEqual(['retries-exhausted']);
    // Begun: its message came, then UNAVAILABLE in the trailers (a reset would read as 13 INTERNAL, which gRPC clients do not retry).
    const streamErr = await streamFailed;
    expect(messages).toEqual(['first']);
    expect(streamErr?.code, `${streamErr?.message}\n${pair.web.output()}`).toBe(grpc.status.UNAVAILABLE);
    expect(streamErr?.details).toBe('sidecar shutting down: its drain timeout (1s) ran out while catalog was answering');
    expect((await pair.web.exited).code, pair.web.output()).toBe(0);
    expect(pair.web.output()).toContain('"inFlight":2,"answered":2');
  });
});
