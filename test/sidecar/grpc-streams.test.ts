/**
 * gRPC through a sidecar pair (mTLS between sidecars, h2c at both ends), every RPC kind:
 * client-streaming and bidirectional calls, `-bin` metadata and trailers, 4 MiB messages,
 * 10 000-message streams, per-RPC balancing over one client connection across three
 * instances, a 90/10 split, and `grpc-timeout` read as the request's deadline.
 */
import * as grpc from '@grpc/grpc-js';
import { connect, constants as h2 } from 'node:http2';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { metric, scrape } from './resilience-fixture.js';
import { echoHandler, freePorts, makeCa, makeLeaf, Processes, startUpstream, tempDir, writeIdentity, writeTempConfig, type SpawnedSidecar, type TestUpstream } from '../support/index.js';

const identity = (b: Buffer): Buffer => b;
const method = (name: string, requestStream: boolean, responseStream: boolean): grpc.MethodDefinition<Buffer, Buffer> => ({
  path: `/test.Echo/${name}`,
  requestStream,
  responseStream,
  requestSerialize: identity,
  requestDeserialize: identity,
  responseSerialize: identity,
  responseDeserialize: identity,
});
const definition: grpc.ServiceDefinition = {
  Echo: method('Echo', false, false),
  Count: method('Count', false, true),
  Upload: method('Upload', true, false),
  Chat: method('Chat', true, true),
};

interface EchoClient extends grpc.Client {
  Echo(req: Buffer, md: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): grpc.ClientUnaryCall;
  Count(req: Buffer, md: grpc.Metadata, options: grpc.CallOptions): grpc.ClientReadableStream<Buffer>;
  Upload(cb: (err: grpc.ServiceError | null, res?: Buffer) => void): grpc.ClientWritableStream<Buffer>;
  Chat(): grpc.ClientDuplexStream<Buffer, Buffer>;
}

const BIG = 8 * 1024 * 1024;
const sizeOptions = { 'grpc.max_receive_message_length': BIG, 'grpc.max_send_message_length': BIG };

/** Messages each instance's latest Count call has written so far, to see backpressure reach the app. */
const countWritten = new Map<string, number>();

/** One catalog instance: answers carry its name so balancing is visible. */
function startApp(name: string): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server(sizeOptions);
  server.addService(definition, {
    Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const bin = call.metadata.get('x-blob-bin')[0];
      if (bin !== undefined) {
        const head = new grpc.Metadata();
        head.set('x-head-bin', bin);
        call.sendMetadata(head);
        const trailer = new grpc.Metadata();
        trailer.set('x-tail-bin', Buffer.concat([bin as Buffer, Buffer.from([0xff])]));
        cb(null, call.request, trailer);
        return;
      }
      const deadline = call.getDeadline();
      if (call.request.length > 1024) cb(null, call.request);
      else if (call.request.toString() === 'fail-on-a' && name === 'a') cb({ code: grpc.status.UNAVAILABLE, details: 'a is down' });
      else if (call.request.toString() === 'deadline') cb(null, Buffer.from(String(Number(deadline) - Date.now())));
      else cb(null, Buffer.from(name));
    },
    Count: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const n = Number(call.request.toString());
      // A cancelled call stops pumping (the loop's condition fails).
      call.on('cancelled', () => (i = n));
      const payload = Buffer.alloc(1024, 7);
      let i = 0;
      // Writes respect backpressure so 10 000 messages stream rather than pile up in memory.
      const pump = (): void => {
        while (i < n) {
          payload.writeUInt32BE(i++, 0);
          countWritten.set(name, i);
          if (!call.write(Buffer.from(payload))) {
            call.once('drain', pump);
            return;
          }
        }
        call.end();
      };
      pump();
    },
    Upload: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      let count = 0;
      let bytes = 0;
      call.on('data', (b: Buffer) => {
        count++;
        bytes += b.length;
      });
      call.on('end', () => cb(null, Buffer.from(`${name}:${count}:${bytes}`)));
    },
    Chat: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', (b: Buffer) => call.write(Buffer.from(`re:${b.toString()}`)));
      call.on('end', () => call.end());
    },
  });
  return new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve({ server, port }))));
}

describe('gRPC RPC kinds, balancing and deadlines through a sidecar pair', () => {
  const procs = new Processes();
  const servers: grpc.Server[] = [];
  const sidecars: SpawnedSidecar[] = [];
  let webApp: TestUpstream;
  let web: SpawnedSidecar;
  let blackHole: Server;
  const held: Socket[] = [];
  let client: EchoClient;

  beforeAll(async () => {
    webApp = await startUpstream(echoHandler('web-app'));
    // Accepts connections and never speaks: calls to it wait until their deadline.
    blackHole = createServer((s) => held.push(s.on('error', () => undefined)));
    await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', resolve));
    const ca = makeCa();
    const dir = tempDir();
    const inbound = await freePorts(3);
    const labels = ['v1', 'v1', 'v2'];
    const config = writeTempConfig(
      {
        services: {
          // Generous timeouts: the shared test machine can be slow; deadlines are tested with grpc-timeout.
          catalog: { protocol: 'grpc', timeout: '30s', retries: { perTryTimeout: '20s' }, outlierDetection: { consecutiveErrors: 3 }, subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } }, endpoints: inbound.map((port, i) => ({ address: '127.0.0.1', port, labels: { version: labels[i]! } })) },
          stuck: { protocol: 'grpc', endpoints: [{ address: '127.0.0.1', port: (blackHole.address() as { port: number }).port, labels: { version: 'v1' } }] },
        },
        routes: { catalog: [{ match: { headers: { 'x-split': 'yes' } }, split: { v1: 90, v2: 10 } }, { match: { pathPrefix: '/' } }] },
      },
      dir,
    );
    for (const [i, name] of ['a', 'b', 'c'].entries()) {
      const app = await startApp(name);
      servers.push(app.server);
      sidecars.push(await procs.sidecar({ service: 'catalog', appPort: app.port, config, inboundPort: inbound[i]!, identity: writeIdentity(dir, `catalog-${name}`, makeLeaf(ca, 'catalog')), extraArgs: ['--app-protocol', 'grpc'] }));
    }
    web = await procs.sidecar({ service: 'web', appPort: webApp.port, config, identity: writeIdentity(dir, 'web', makeLeaf(ca, 'web')) });
    const Ctor = grpc.makeGenericClientConstructor(definition, 'Echo');
    client = new Ctor(`127.0.0.1:${web.outboundPort}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'catalog', ...sizeOptions }) as unknown as EchoClient;
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.log(`--- web ---\n${web?.output()}\n${sidecars.map((s) => `--- catalog ---\n${s.output()}`).join('\n')}`);
  });

  afterAll(async () => {
    client?.close();
    await procs.killAll();
    for (const s of servers) s.forceShutdown();
    for (const s of held) s.destroy();
    blackHole?.close();
    await webApp?.close();
  });

  const echo = (req: Buffer, md = new grpc.Metadata(), options: grpc.CallOptions = {}) =>
    new Promise<{ err: grpc.ServiceError | null; res?: Buffer; head?: grpc.Metadata; tail?: grpc.Metadata }>((resolve) => {
      let head: grpc.Metadata | undefined;
      let tail: grpc.Metadata | undefined;
      const call = client.Echo(req, md, options, (err, res) => setImmediate(() => resolve({ err, res, head, tail })));
      call.on('metadata', (m) => (head = m));
      call.on('status', (s) => (tail = s.metadata));
    });

  /** `n` calls, 20 in flight at a time (all on the client's one connection). */
  const inBatches = async <T>(n: number, call: () => Promise<T>): Promise<T[]> => {
    const out: T[] = [];
    while (out.length < n) out.push(...(await Promise.all(Array.from({ length: Math.min(20, n - out.length) }, call))));
    return out;
  };

  it('carries client-streaming calls', async () => {
    const res = await new Promise<Buffer>((resolve, reject) => {
      const call = client.Upload((err, r) => (err ? reject(err) : resolve(r!)));
      for (let i = 0; i < 100; i++) call.write(Buffer.alloc(1000, i));
      call.end();
    });
    expect(res.toString()).toMatch(/^[abc]:100:100000$/);
  });

  it('carries bidirectional calls, answers interleaved with requests', async () => {
    const call = client.Chat();
    const got: string[] = [];
    // Each request waits for the previous answer: proof that nothing is buffered until the end.
    for (let i = 0; i < 50; i++) {
      const answer = new Promise<string>((resolve) => call.once('data', (b: Buffer) => resolve(b.toString())));
      call.write(Buffer.from(`m${i}`));
      got.push(await answer);
    }
    call.end();
    await new Promise<void>((resolve, reject) => {
      call.on('status', (s: grpc.StatusObject) => (s.code === grpc.status.OK ? resolve() : reject(new Error(s.details))));
      call.resume();
    });
    expect(got).toEqual(Array.from({ length: 50 }, (_, i) => `re:m${i}`));
  });

  it('round-trips binary metadata in headers and trailers', async () => {
    const md = new grpc.Metadata();
    const blob = Buffer.from([0, 1, 2, 250, 251, 252, 10, 13]);
    md.set('x-blob-bin', blob);
    const { err, res, head, tail } = await echo(Buffer.from('bin'), md);
    expect(err).toBeNull();
    expect(res!.toString()).toBe('bin');
    expect(head!.get('x-head-bin')[0]).toEqual(blob);
    expect(tail!.get('x-tail-bin')[0]).toEqual(Buffer.concat([blob, Buffer.from([0xff])]));
  });

  it('carries 4 MiB messages both ways', async () => {
    const big = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4) big.writeUInt32BE(i, i);
    const { err, res } = await echo(big);
    expect(err).toBeNull();
    expect(res!.equals(big)).toBe(true);
  });

  it('streams 10 000 messages in order', async () => {
    let next = 0;
    let outOfOrder = 0;
    await new Promise<void>((resolve, reject) => {
      const stream = client.Count(Buffer.from('10000'), new grpc.Metadata(), { deadline: Date.now() + 60_000 });
      stream.on('data', (b: Buffer) => {
        if (b.readUInt32BE(0) !== next) outOfOrder++;
        next++;
      });
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    expect(next).toBe(10_000);
    expect(outOfOrder).toBe(0);
  });

  it('holds the app back while the caller does not read (HTTP/2 flow control end to end)', async () => {
    countWritten.clear();
    const stream = client.Count(Buffer.from('200000'), new grpc.Metadata(), { deadline: Date.now() + 60_000 });
    stream.on('error', () => undefined);
    await new Promise<void>((resolve) => stream.once('data', () => resolve()));
    stream.pause();
    const written = (): number => Math.max(0, ...countWritten.values());
    // Let every window and buffer on the way fill, then see that the app stays stopped.
    await expect.poll(async () => {
      const before = written();
      await new Promise((resolve) => setTimeout(resolve, 300));
      return written() === before;
    }, { timeout: 20_000, interval: 1 }).toBe(true);
    // 1 KiB messages: what sits in the windows and socket buffers of two hops, far from the 200 MB asked for.
    expect(written()).toBeLessThan(16_000);
    stream.cancel();
  });

  it('survives callers that cancel server streams while the app is still sending', async () => {
    // The answer's DATA keeps arriving after the caller's stream closed: writing it must not crash a sidecar.
    for (let round = 0; round < 3; round++) {
      await Promise.all(
        Array.from({ length: 10 }, () =>
          new Promise<void>((resolve) => {
            const stream = client.Count(Buffer.from('100000'), new grpc.Metadata(), { deadline: Date.now() + 30_000 });
            let seen = 0;
            stream.on('data', () => {
              if (++seen === 5) stream.cancel();
            });
            stream.on('error', () => resolve());
            stream.on('end', () => resolve());
          }),
        ),
      );
    }
    // A client that dies with calls in flight: its connection is torn down under open streams.
    for (let round = 0; round < 5; round++) {
      const session = connect(`http://127.0.0.1:${web.outboundPort}`);
      session.on('error', () => undefined);
      const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, 6]), Buffer.from('100000')]);
      const firstData = new Promise<void>((resolve) => {
        for (let i = 0; i < 20; i++) {
          const stream = session.request({ ':method': 'POST', ':path': '/test.Echo/Count', ':authority': 'catalog', 'content-type': 'application/grpc', te: 'trailers' });
          stream.on('error', () => undefined);
          stream.once('data', () => resolve());
          stream.end(frame);
        }
      });
      await firstData;
      session.destroy();
    }
    const { err } = await echo(Buffer.from('still there'));
    expect(err).toBeNull();
    for (const s of [web, ...sidecars]) expect(s.hasExited).toBe(false);
  });

  it('balances each RPC, not each connection, across three instances', async () => {
    const counts: Record<string, number> = {};
    const n = 300;
    const answers = await inBatches(n, () => echo(Buffer.from('who')));
    for (const { err, res } of answers) {
      expect(err).toBeNull();
      counts[res!.toString()] = (counts[res!.toString()] ?? 0) + 1;
    }
    for (const name of ['a', 'b', 'c']) expect(counts[name] ?? 0).toBeGreaterThan(n / 3 - 40);
  });

  it('splits gRPC calls 90/10 by subset', async () => {
    const md = new grpc.Metadata();
    md.set('x-split', 'yes');
    const n = 400;
    const answers = await inBatches(n, () => echo(Buffer.from('who'), md.clone()));
    const toV2 = answers.filter((a) => a.res?.toString() === 'c').length;
    expect(answers.every((a) => a.err === null)).toBe(true);
    expect(toV2).toBeGreaterThan(n * 0.1 - 25);
    expect(toV2).toBeLessThan(n * 0.1 + 25);
  });

  it('propagates the grpc-timeout deadline to the app', async () => {
    const { err, res } = await echo(Buffer.from('deadline'), new grpc.Metadata(), { deadline: Date.now() + 2000 });
    expect(err).toBeNull();
    const remaining = Number(res!.toString());
    expect(remaining).toBeGreaterThan(1000);
    expect(remaining).toBeLessThanOrEqual(2000);
  });

  it('answers DEADLINE_EXCEEDED itself when grpc-timeout passes (before the route timeout)', async () => {
    // A raw HTTP/2 client: it enforces no deadline of its own, so the answer is the sidecar's.
    const session = connect(`http://127.0.0.1:${web.outboundPort}`);
    try {
      const started = performance.now();
      const req = session.request({ ':method': 'POST', ':path': '/test.Echo/Echo', ':authority': 'stuck', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '300m' });
      req.end(Buffer.from([0, 0, 0, 0, 1, 120]));
      const { headers, trailers } = await new Promise<{ headers: Record<string, unknown>; trailers: Record<string, unknown> }>((resolve, reject) => {
        let headers: Record<string, unknown> = {};
        req.on('response', (h) => (headers = h));
        req.on('trailers', (t) => resolve({ headers, trailers: t }));
        req.on('end', () => resolve({ headers, trailers: {} }));
        req.on('error', reject);
        req.resume();
      });
      const elapsed = performance.now() - started;
      const status = (trailers['grpc-status'] ?? headers['grpc-status']) as string;
      expect(headers[h2.HTTP2_HEADER_STATUS]).toBe(200);
      expect(status).toBe(String(grpc.status.DEADLINE_EXCEEDED));
      expect(trailers['x-skein-reason'] ?? headers['x-skein-reason']).toBe('timeout');
      expect(elapsed).toBeGreaterThanOrEqual(290);
      expect(elapsed).toBeLessThan(2000); // the route's own timeout is 3 s
    } finally {
      session.destroy();
    }
  });

  // Last: it ejects instance a for the rest of the file.
  it('counts UNAVAILABLE answers as failures for outlier detection', async () => {
    const answers = await inBatches(60, () => echo(Buffer.from('fail-on-a')));
    expect(answers.some((a) => a.err?.code === grpc.status.UNAVAILABLE)).toBe(true);
    expect(metric(await scrape(web), 'skein_outlier_ejections_total', { destination: 'catalog' })).toBeGreaterThanOrEqual(1);
    const after = await inBatches(20, () => echo(Buffer.from('fail-on-a')));
    expect(after.every((a) => a.err === null)).toBe(true);
  });
});
