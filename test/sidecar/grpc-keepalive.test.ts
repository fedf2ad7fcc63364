/**
 * A peer sidecar that stops answering (SIGSTOP: no FIN, no RST) on an HTTP/2 (gRPC) session,
 * with the route's timeouts off: the caller's sidecar PINGs the silent session (10 s of
 * silence + 5 s for the answer), gives it up, and fails its call instead of holding it until
 * the client's deadline; once the peer runs again, new calls take a new session.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echoHandler, freePorts, makeCa, makeLeaf, Processes, startUpstream, tempDir, writeIdentity, writeTempConfig, type SpawnedSidecar, type TestUpstream } from '../support/index.js';

const identity = (b: Buffer): Buffer => b;
const definition: grpc.ServiceDefinition = {
  Echo: { path: '/test.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
};

interface EchoClient extends grpc.Client {
  Echo(req: Buffer, md: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void;
}

describe('HTTP/2 upstream keepalive between sidecars', { timeout: 120_000 }, () => {
  const procs = new Processes();
  let server: grpc.Server;
  let webApp: TestUpstream;
  let catalog: SpawnedSidecar;
  let client: EchoClient;

  beforeAll(async () => {
    server = new grpc.Server();
    server.addService(definition, {
      Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(`echo:${call.request.toString()}`)),
    });
    const appPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
    webApp = await startUpstream(echoHandler('web-app'));
    const ca = makeCa();
    const dir = tempDir();
    const [catalogInbound] = (await freePorts(1)) as [number];
    // No timeouts: nothing but the keepalive can end a call to a peer that went silent.
    const config = writeTempConfig(
      {
        services: { catalog: { protocol: 'grpc', timeout: '0s', retries: { attempts: 0, perTryTimeout: '0s' }, endpoints: [{ address: '127.0.0.1', port: catalogInbound, labels: { version: 'v1' } }] } },
      },
      dir,
    );
    catalog = await procs.sidecar({ service: 'catalog', appPort, config, inboundPort: catalogInbound, identity: writeIdentity(dir, 'catalog', makeLeaf(ca, 'catalog')), extraArgs: ['--app-protocol', 'grpc'] });
    const web = await procs.sidecar({ service: 'web', appPort: webApp.port, config, identity: writeIdentity(dir, 'web', makeLeaf(ca, 'web')) });
    const Ctor = grpc.makeGenericClientConstructor(definition, 'Echo');
    client = new Ctor(`127.0.0.1:${web.outboundPort}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'catalog' }) as unknown as EchoClient;
  });

  afterAll(async () => {
    // A stopped process cannot act on SIGTERM.
    catalog?.kill('SIGCONT');
    client?.close();
    await procs.killAll();
    server?.forceShutdown();
    await webApp?.close();
  });

  const echo = (text: string, deadlineMs: number) =>
    new Promise<{ err: grpc.ServiceError | null; res?: Buffer; ms: number }>((resolve) => {
      const started = Date.now();
      client.Echo(Buffer.from(text), new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => resolve({ err, res, ms: Date.now() - started }));
    });

  it('fails a call on a session whose peer was SIGSTOPped within the keepalive bounds, and takes a new session after SIGCONT', async () => {
    const first = await echo('one', 10_000);
    expect(first.err).toBeNull();
    expect(first.res?.toString()).toBe('echo:one');

    catalog.kill('SIGSTOP');
    try {
      // Silence is noticed within one to two 10 s ticks, then the PING has 5 s: at most ~25 s.
      const stuck = await echo('two', 60_000);
      expect(stuck.err?.code, stuck.err?.message).toBe(grpc.status.UNAVAILABLE);
      expect(stuck.ms).toBeLessThan(35_000);
    } finally {
      catalog.kill('SIGCONT');
    }
    // The dead session is gone: a new call opens a new one (polled, with a deadline).
    const deadline = Date.now() + 20_000;
    let last: Awaited<ReturnType<typeof echo>> | undefined;
    while (Date.now() < deadline) {
      last = await echo('three', 5_000);
      if (last.err === null) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(last?.err ?? null).toBeNull();
    expect(last?.res?.toString()).toBe('echo:three');
  });
});
