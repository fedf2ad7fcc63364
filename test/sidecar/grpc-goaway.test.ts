/**
 * GOAWAY under load loses no gRPC call: a peer sidecar that drains (POST /drain, then SIGTERM
 * with a server stream still open) says so with the two-step GOAWAY, so no stream on its way is
 * refused; and an app that closes its connections itself (grpc-js `grpc.max_connection_age_ms`)
 * refuses streams past its GOAWAY, which the sidecar sends again on a new connection, streamed
 * bodies included (a gRPC call's body is a stream).
 */
import * as grpc from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { connect as h2connect, constants, createSecureServer, createServer as createH2cServer } from 'node:http2';
import { connect, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { echoHandler, freePorts, makeCa, makeLeaf, Processes, startUpstream, tempDir, waitUntil, writeIdentity, writeTempConfig, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { echoDefinition, grpcClient, startGrpcSidecarPair } from './grpc-fixture.js';

type EchoClient = grpc.Client & {
  Echo(req: Buffer, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void;
  Count(req: Buffer): grpc.ClientReadableStream<Buffer>;
};

/** A grpc-js app answering Echo after 5 ms and streaming `Count` one message per 100 ms until released. */
async function startApp(options: grpc.ServerOptions = {}): Promise<{ server: grpc.Server; release: () => void }> {
  const server = new grpc.Server(options);
  const held: (() => void)[] = [];
  server.addService(echoDefinition, {
    Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => setTimeout(() => cb(null, call.request), 5),
    Count: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const tick = setInterval(() => call.write(Buffer.from('x')), 100);
      held.push(() => {
        clearInterval(tick);
        call.end();
      });
    },
  });
  return { server, release: () => held.splice(0).forEach((end) => end()) };
}

function bind(server: grpc.Server): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
}

/** Keeps 10 unary calls in flight until stopped; counts the answers and the failures (by code, text and reason). */
function steadyLoad(client: EchoClient): { ok: () => number; failures: Record<string, number>; stop: () => Promise<void> } {
  let ok = 0;
  let stopped = false;
  const failures: Record<string, number> = {};
  const one = (): Promise<void> =>
    new Promise((resolve) =>
      client.Echo(Buffer.from('hi'), (err) => {
        if (err === null) ok++;
        else {
          const key = `${err.code} ${err.details} (${String(err.metadata?.get('x-skein-reason') ?? '')})`;
          failures[key] = (failures[key] ?? 0) + 1;
        }
        resolve();
      }),
    );
  const loop = (async () => {
    while (!stopped) {
      await Promise.all(Array.from({ length: 10 }, one));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  return {
    ok: () => ok,
    failures,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

/** Resolves with how the server stream ended: 'ok' or its error's code. */
function openStream(client: EchoClient): { messages: () => number; ended: Promise<string> } {
  const stream = client.Count(Buffer.from('go'));
  let messages = 0;
  stream.on('data', () => messages++);
  const ended = new Promise<string>((resolve) => {
    stream.on('end', () => resolve('ok'));
    stream.on('error', (err: grpc.ServiceError) => resolve(`${err.code} ${err.details}`));
  });
  return { messages: () => messages, ended };
}

describe('gRPC under GOAWAY', () => {
  const procs = new Processes();
  const cleanup: (() => unknown)[] = [];

  afterEach(async () => {
    await procs.killAll();
    for (const c of cleanup.splice(0)) await c();
  });

  it('loses no call while one of two peer endpoints drains (POST /drain, then SIGTERM with a stream open)', async () => {
    const apps = [await startApp(), await startApp()];
    const appPorts = [await bind(apps[0]!.server), await bind(apps[1]!.server)];
    cleanup.push(() => apps.forEach((a) => a.server.forceShutdown()));
    const webApp: TestUpstream = await startUpstream(echoHandler('web-app'));
    cleanup.push(() => webApp.close());
    const ca = makeCa();
    const dir = tempDir();
    const inbound = await freePorts(2);
    // No route timeout: the server streams stay open for the whole test, which a loaded machine can stretch past the default.
    const config = writeTempConfig({ services: { catalog: { protocol: 'grpc', timeout: '0s', endpoints: inbound.map((port) => ({ address: '127.0.0.1', port, labels: { version: 'v1' } })) } } }, dir);
    const catalogs: SpawnedSidecar[] = [];
    for (const i of [0, 1]) {
      const identity = writeIdentity(dir, `catalog${i}`, makeLeaf(ca, 'catalog'));
      catalogs.push(await procs.sidecar({ service: 'catalog', appPort: appPorts[i]!, config, inboundPort: inbound[i]!, identity, extraArgs: ['--app-protocol', 'grpc'], drainTimeout: '10s' }));
    }
    const web = await procs.sidecar({ service: 'web', appPort: webApp.port, config, identity: writeIdentity(dir, 'web', makeLeaf(ca, 'web')) });
    const client = grpcClient<EchoClient>(echoDefinition, web.outboundPort);
    cleanup.push(() => client.close());

    const load = steadyLoad(client);
    // Server streams on both endpoints, so the SIGTERM below finds one open on the draining peer's session.
    const streams = Array.from({ length: 4 }, () => openStream(client));
    await waitUntil(() => load.ok() >= 200 && streams.every((s) => s.messages() > 0), { what: 'calls and streams going', timeoutMs: 15_000 });
    expect((await fetch(`${catalogs[1]!.adminUrl}/drain`, { method: 'POST' })).status).toBe(202);
    const atDrain = load.ok();
    await waitUntil(() => load.ok() >= atDrain + 300, { what: 'calls during the drain', timeoutMs: 15_000 });
    catalogs[1]!.kill('SIGTERM');
    const atTerm = load.ok();
    await waitUntil(() => load.ok() >= atTerm + 300, { what: 'calls after SIGTERM', timeoutMs: 15_000 });
    apps.forEach((a) => a.release());
    const ended = await Promise.all(streams.map((s) => s.ended));
    await load.stop();
    expect(load.failures).toEqual({});
    expect(ended).toEqual(['ok', 'ok', 'ok', 'ok']);
    expect((await catalogs[1]!.exited).code).toBe(0);
  }, 60_000);

  /**
   * A catalog behind two endpoints: a peer at the end of its drain (a TLS HTTP/2 server with the
   * catalog's identity that refuses its streams unprocessed, once `refuseAfter` bytes of a body
   * came or at its end, and closes its listener at the first, so no call can reach it again)
   * and a live catalog sidecar in front of `appPort`; and a web sidecar calling them.
   */
  async function drainingPeerBesideLive(appPort: number, refuseAfter: number): Promise<{ web: SpawnedSidecar; refused: () => number }> {
    const webApp: TestUpstream = await startUpstream(echoHandler('web-app'));
    cleanup.push(() => webApp.close());
    const ca = makeCa();
    const dir = tempDir();
    const peerLeaf = makeLeaf(ca, 'catalog');
    let refused = 0;
    const draining = createSecureServer({ key: peerLeaf.keyPem, cert: peerLeaf.certPem, ca: peerLeaf.caPem, requestCert: true, ALPNProtocols: ['h2'] });
    draining.on('stream', (stream) => {
      stream.on('error', () => {});
      let seen = 0;
      const refuse = (): void => {
        if (stream.closed) return;
        refused++;
        draining.close();
        stream.close(constants.NGHTTP2_REFUSED_STREAM);
      };
      if (refuseAfter === 0) return refuse();
      stream.on('data', (chunk: Buffer) => {
        if ((seen += chunk.length) >= refuseAfter) refuse();
      });
      stream.on('end', refuse);
    });
    await new Promise<void>((resolve) => draining.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise((resolve) => draining.close(resolve)));
    const [livePort] = await freePorts(1);
    const endpoints = [(draining.address() as AddressInfo).port, livePort!].map((port) => ({ address: '127.0.0.1', port, labels: { version: 'v1' } }));
    const config = writeTempConfig({ services: { catalog: { protocol: 'grpc', endpoints } } }, dir);
    await procs.sidecar({ service: 'catalog', appPort, config, inboundPort: livePort!, identity: writeIdentity(dir, 'catalog', makeLeaf(ca, 'catalog')), extraArgs: ['--app-protocol', 'grpc'] });
    const web = await procs.sidecar({ service: 'web', appPort: webApp.port, config, identity: writeIdentity(dir, 'web', makeLeaf(ca, 'web')) });
    return { web, refused: () => refused };
  }

  it('sends a call its draining peer refused, and that could not reach that peer again, to the other endpoint', async () => {
    const app = await startApp();
    const appPort = await bind(app.server);
    cleanup.push(() => app.server.forceShutdown());
    const { web, refused } = await drainingPeerBesideLive(appPort, 0);
    const client = grpcClient<EchoClient>(echoDefinition, web.outboundPort);
    cleanup.push(() => client.close());

    const answers: string[] = [];
    for (let i = 0; i < 20; i++) {
      answers.push(await new Promise<string>((resolve) => client.Echo(Buffer.from(`call ${i}`), (err, res) => resolve(err === null ? res!.toString() : `${err.code} ${err.details}`))));
    }
    expect(answers).toEqual(Array.from({ length: 20 }, (_, i) => `call ${i}`));
    expect(refused()).toBeGreaterThan(0);
  }, 30_000);

  it('sends a call whose body was still streaming when its draining peer refused it to the other endpoint: what went out, then the rest', async () => {
    // An h2c gRPC app that answers how many bytes it got and their hash.
    const app = createH2cServer();
    app.on('stream', (stream) => {
      const hash = createHash('sha256');
      let bytes = 0;
      stream.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
      });
      stream.on('end', () => {
        const message = Buffer.from(`${bytes} ${hash.digest('hex')}`);
        const prefix = Buffer.alloc(5);
        prefix.writeUInt32BE(message.length, 1);
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(Buffer.concat([prefix, message]));
      });
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise((resolve) => app.close(resolve)));
    const { web, refused } = await drainingPeerBesideLive((app.address() as AddressInfo).port, 1000);

    /** Streams ten 1000-byte chunks 20 ms apart; resolves with what was sent and what came back. */
    const streamedCall = (): Promise<{ sent: string; answer: string }> =>
      new Promise((resolve) => {
        const session = h2connect(`http://127.0.0.1:${web.outboundPort}`);
        session.on('error', () => {});
        const req = session.request({ ':method': 'POST', ':path': '/test.Echo/Up', ':authority': 'catalog', 'content-type': 'application/grpc', te: 'trailers' });
        const hash = createHash('sha256');
        let sent = 0;
        const next = (): void => {
          if (req.closed) return;
          if (sent === 10_000) return void req.end();
          const chunk = Buffer.alloc(1000, 97 + sent / 1000);
          hash.update(chunk);
          sent += chunk.length;
          req.write(chunk);
          setTimeout(next, 20);
        };
        next();
        const body: Buffer[] = [];
        let status = '';
        req.on('response', (head) => (status = String(head['grpc-status'] ?? '')));
        req.on('trailers', (trailers) => (status = String(trailers['grpc-status'] ?? status)));
        req.on('data', (chunk: Buffer) => body.push(chunk));
        req.on('error', () => {});
        req.on('close', () => {
          session.close();
          resolve({ sent: `${sent} ${hash.digest('hex')}`, answer: `${Buffer.concat(body).subarray(5).toString()} (grpc-status ${status})` });
        });
      });

    // The web sidecar picks an endpoint at random: call until one call has met the refusing peer.
    for (let i = 0; i < 12 && refused() === 0; i++) {
      const { sent, answer } = await streamedCall();
      expect(answer).toBe(`${sent} (grpc-status 0)`);
    }
    expect(refused()).toBe(1);
    expect((await fetch(`${web.adminUrl}/live`)).status).toBe(200);
  }, 30_000);

  it('sends a drained HTTP/2 client that never answers the PING between the two GOAWAYs the second anyway, and closes its session', async () => {
    const app = await startUpstream(echoHandler('web-app'));
    cleanup.push(() => app.close());
    const web = await procs.sidecar({ service: 'web', appPort: app.port, config: writeTempConfig({ services: {} }, tempDir()) });
    // A raw HTTP/2 client (h2c, prior knowledge) that acknowledges SETTINGS and nothing else.
    const socket = connect(web.outboundPort, '127.0.0.1');
    cleanup.push(() => socket.destroy());
    const goaways: number[] = [];
    let pings = 0;
    let pending = Buffer.alloc(0);
    const ended = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 9 && pending.length >= 9 + pending.readUIntBE(0, 3)) {
        const length = pending.readUIntBE(0, 3);
        const [type, flags] = [pending[3]!, pending[4]!];
        if (type === 4 && (flags & 1) === 0) socket.write(Buffer.from([0, 0, 0, 4, 1, 0, 0, 0, 0]));
        if (type === 6 && (flags & 1) === 0) pings++;
        if (type === 7) goaways.push(pending.readUInt32BE(9) & 0x7fffffff);
        pending = pending.subarray(9 + length);
      }
    });
    socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
    await waitUntil(() => pending.length === 0 && socket.bytesRead > 0, { what: 'the sidecar\'s SETTINGS' });
    expect((await fetch(`${web.adminUrl}/drain`, { method: 'POST' })).status).toBe(202);
    const startedAt = Date.now();
    await ended;
    expect(Date.now() - startedAt).toBeLessThan(10_000);
    expect(pings).toBe(1);
    // The first refuses nothing; the last (node may repeat it as the session closes) names the last stream taken: none.
    expect(goaways[0]).toBe(2 ** 31 - 1);
    expect(goaways.slice(1).length).toBeGreaterThan(0);
    expect(goaways.slice(1).every((id) => id === 0)).toBe(true);
  }, 30_000);

  it('loses no call to an app that closes its connections every 200 ms (grpc.max_connection_age_ms)', async () => {
    const app = await startApp({ 'grpc.max_connection_age_ms': 200, 'grpc.max_connection_age_grace_ms': 2000 });
    const server = app.server;
    cleanup.push(() => server.forceShutdown());
    const pair = await startGrpcSidecarPair(procs, server);
    cleanup.push(() => pair.webApp.close());
    const client = grpcClient<EchoClient>(echoDefinition, pair.web.outboundPort);
    cleanup.push(() => client.close());
    const load = steadyLoad(client);
    // About 5 s: some 25 of the app's connection lifetimes.
    await waitUntil(() => load.ok() >= 3000, { what: '3000 calls', timeoutMs: 30_000 });
    await load.stop();
    expect(load.failures).toEqual({});
  }, 60_000);
});
