/**
 * The setup the gRPC sidecar tests share: a grpc-js app on raw-byte methods of `test.Echo`,
 * served as `catalog` behind an mTLS sidecar pair (catalog's inbound → its app over h2c; web's
 * outbound for the callers), a grpc-js client through web's outbound listener, and one raw
 * h2c call that shows a sidecar-made answer's headers (`grpcCall`).
 */
import * as grpc from '@grpc/grpc-js';
import { connect as h2connect, type IncomingHttpHeaders, type IncomingHttpStatusHeader } from 'node:http2';
import { afterAll, afterEach } from 'vitest';
import type { RouteRuleInput, ServicePolicyInput } from '../../common/config/schema.js';
import { echoHandler, freePorts, makeCa, makeLeaf, tempDir, writeIdentity, writeTempConfig, startUpstream, type Processes, type SpawnedSidecar, type TestUpstream } from '../support/index.js';

const bytes = (b: Buffer): Buffer => b;

/** Method `name` of `test.Echo`, taking one message (or a stream, with `requestStream`) and answering one (or a stream, with `responseStream`), as raw bytes. */
export function rawMethod(name: string, responseStream: boolean, requestStream = false): grpc.MethodDefinition<Buffer, Buffer> {
  return { path: `/test.Echo/${name}`, requestStream, responseStream, requestSerialize: bytes, requestDeserialize: bytes, responseSerialize: bytes, responseDeserialize: bytes };
}

/** One length-prefixed, uncompressed gRPC message, as a raw HTTP/2 app writes it. */
export function grpcFrame(payload: string): Buffer {
  const body = Buffer.from(payload);
  const out = Buffer.alloc(5 + body.length);
  out.writeUInt32BE(body.length, 1);
  body.copy(out, 5);
  return out;
}

/** `test.Echo` with `Echo` (unary) and `Count` (server stream). */
export const echoDefinition: grpc.ServiceDefinition = { Echo: rawMethod('Echo', false), Count: rawMethod('Count', true) };

export interface GrpcSidecarPair {
  /** web's own app (an HTTP echo upstream; the callers only use web's outbound listener). */
  readonly webApp: TestUpstream;
  readonly web: SpawnedSidecar;
  readonly catalog: SpawnedSidecar;
}

/**
 * Binds `server` (its services added) on a free port and starts the pair in front of it:
 * service `catalog` has `protocol: 'grpc'` and `policy`; web gets `drainTimeout` and `extraArgs` if given.
 */
export async function startGrpcSidecarPair(
  procs: Processes,
  server: grpc.Server,
  policy: Omit<ServicePolicyInput, 'protocol' | 'endpoints'> = {},
  web: { drainTimeout?: string; extraArgs?: readonly string[] } = {},
): Promise<GrpcSidecarPair> {
  const appPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
  return startH2cGrpcPair(procs, appPort, policy, web);
}

/** The same pair in front of any h2c app already listening on `appPort`; `routes`: catalog's route rules. */
export async function startH2cGrpcPair(
  procs: Processes,
  appPort: number,
  policy: Omit<ServicePolicyInput, 'protocol' | 'endpoints'> = {},
  web: { drainTimeout?: string; extraArgs?: readonly string[] } = {},
  routes?: RouteRuleInput[],
): Promise<GrpcSidecarPair> {
  const webApp = await startUpstream(echoHandler('web-app'));
  const ca = makeCa();
  const dir = tempDir();
  const [catalogInbound] = (await freePorts(1)) as [number];
  const config = writeTempConfig({ services: { catalog: { protocol: 'grpc', ...policy, endpoints: [{ address: '127.0.0.1', port: catalogInbound, labels: { version: 'v1' } }] } }, ...(routes ? { routes: { catalog: routes } } : {}) }, dir);
  const catalog = await procs.sidecar({ service: 'catalog', appPort, config, inboundPort: catalogInbound, identity: writeIdentity(dir, 'catalog', makeLeaf(ca, 'catalog')), extraArgs: ['--app-protocol', 'grpc'] });
  const webSidecar = await procs.sidecar({ service: 'web', appPort: webApp.port, config, ...web, identity: writeIdentity(dir, 'web', makeLeaf(ca, 'web')) });
  return { webApp, web: webSidecar, catalog };
}

/** A client of `definition` dialing `outboundPort` with h2c, its `:authority` naming `authority`. */
export function grpcClient<C extends grpc.Client>(definition: grpc.ServiceDefinition, outboundPort: number, authority = 'catalog'): C {
  const Ctor = grpc.makeGenericClientConstructor(definition, 'Echo');
  return new Ctor(`127.0.0.1:${outboundPort}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': authority }) as unknown as C;
}

/** One gRPC call (h2c to the outbound listener): the answer's status, x-skein-reason, grpc-status and grpc-message. */
export async function grpcCall(port: number, authority: string): Promise<{ status: number; reason: unknown; grpcStatus: unknown; grpcMessage: unknown }> {
  const head = await grpcAnswerHead(port, authority);
  return { status: head[':status']!, reason: head['x-skein-reason'], grpcStatus: head['grpc-status'], grpcMessage: head['grpc-message'] };
}

/** One call of `path` with `headers` added, one empty message (h2c to `port`): its answer's head and trailers together. */
export function grpcAnswerHead(port: number, authority: string, path = '/test.Echo/Echo', headers: Record<string, string> = {}): Promise<IncomingHttpHeaders & IncomingHttpStatusHeader> {
  return new Promise((resolve, reject) => {
    const session = h2connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request({ ':method': 'POST', ':path': path, ':authority': authority, 'content-type': 'application/grpc', te: 'trailers', ...headers });
    let head: IncomingHttpHeaders & IncomingHttpStatusHeader = {};
    stream.on('response', (h) => (head = h));
    stream.on('trailers', (t) => (head = { ...head, ...t }));
    stream.on('error', reject);
    stream.resume();
    stream.on('end', () => {
      session.close();
      resolve(head);
    });
    // An empty message: the 5-byte gRPC frame header alone.
    stream.end(Buffer.alloc(5));
  });
}

/** What a describe block on a pair holds; a hook finds unset what its beforeAll did not get to. */
export interface GrpcPairState {
  readonly server?: grpc.Server;
  readonly client?: grpc.Client;
  readonly webApp?: TestUpstream;
  readonly web?: SpawnedSidecar;
  readonly catalog?: SpawnedSidecar;
}

/**
 * Registers the block's hooks: after a failed test, both sidecars' output is logged; after the
 * block, the client is closed, `procs` killed, the app server shut down and web's app closed.
 */
export function grpcPairTeardown(procs: Processes, state: () => GrpcPairState): void {
  afterEach((ctx) => {
    const { web, catalog } = state();
    if (ctx.task.result?.state === 'fail') console.log(`--- web ---\n${web?.output()}\n--- catalog ---\n${catalog?.output()}`);
  });
  afterAll(async () => {
    const { client, server, webApp } = state();
    client?.close();
    await procs.killAll();
    server?.forceShutdown();
    await webApp?.close();
  });
}
