/**
 * What a gRPC caller's request carries that HTTP/2 makes awkward, through an mTLS sidecar pair
 * to a grpc-js app: Host beside `:authority` (RFC 9113 §8.3.1 allows it; differing values are
 * the caller's error), fields HTTP/2 cannot carry on to the peer (a repeated User-Agent), and a
 * body past `--max-request-body` after the app has answered. None of them is an endpoint's
 * failure, and a call whose answer has begun still ends with a gRPC status.
 */
import * as grpc from '@grpc/grpc-js';
import { connect as connectH2, type ClientHttp2Session } from 'node:http2';
import { connect } from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { Processes, type SpawnedSidecar } from '../support/index.js';
import { echoDefinition, grpcClient, grpcPairTeardown, rawMethod, startGrpcSidecarPair, type GrpcPairState } from './grpc-fixture.js';

const chatDefinition: grpc.ServiceDefinition = { ...echoDefinition, Chat: rawMethod('Chat', true, true) };

interface ChatClient extends grpc.Client {
  Chat(): grpc.ClientDuplexStream<Buffer, Buffer>;
}

interface EchoClient extends grpc.Client {
  Echo(req: Buffer, md: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void;
}

interface RawAnswer {
  status?: number;
  grpcStatus?: string;
  reason?: string;
  message?: string;
}

/** One unary Echo call on `session` with `headers` added; the status and reason come from the head or the trailers. */
function rawCall(session: ClientHttp2Session, headers: Record<string, string>): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const stream = session.request({ ':method': 'POST', ':path': '/test.Echo/Echo', 'content-type': 'application/grpc', te: 'trailers', ...headers });
    const fields: Record<string, unknown> = {};
    stream.on('response', (h) => Object.assign(fields, h));
    stream.on('trailers', (t) => Object.assign(fields, t));
    stream.on('error', () => {});
    stream.on('close', () => resolve({ status: fields[':status'] as number, grpcStatus: fields['grpc-status'] as string, reason: fields['x-skein-reason'] as string, message: fields['grpc-message'] as string }));
    stream.resume();
    // One empty, uncompressed message.
    stream.end(Buffer.from([0, 0, 0, 0, 0]));
  });
}

/** An HTTP/1.1 request written as `head` on a fresh connection; the answer as read until its Content-Length is in or the sidecar closes. */
function rawHttp1(port: number, head: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let answer = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      answer += d;
      const end = answer.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: (\d+)/i.exec(answer);
      if (end >= 0 && length !== null && answer.length - end - 4 >= Number(length[1])) socket.end();
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve(answer));
    socket.write(head);
  });
}

/** Neither catalog endpoint nor subset was blamed: no outlier streak, every breaker closed. */
async function expectNoFailureCounted(web: SpawnedSidecar): Promise<void> {
  const clusters = (await (await fetch(`${web.adminUrl}/clusters`)).json()) as {
    catalog: { endpoints: { outlier: { consecutiveErrors: number } | null }[]; subsets: Record<string, { breaker: { state: string } | null }> };
  };
  for (const e of clusters.catalog.endpoints) expect(e.outlier?.consecutiveErrors ?? 0).toBe(0);
  for (const s of Object.values(clusters.catalog.subsets)) expect(s.breaker?.state ?? 'closed').toBe('closed');
}

describe('gRPC request fields HTTP/2 makes awkward', () => {
  const procs = new Processes();
  const state: { -readonly [K in keyof GrpcPairState]: GrpcPairState[K] } = {};
  let web: SpawnedSidecar;
  let session: ClientHttp2Session;

  beforeAll(async () => {
    const server = new grpc.Server();
    state.server = server;
    server.addService(chatDefinition, {
      // Says what it got in a field named as a member of Object.prototype, if anything.
      Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        const got = call.metadata.get('constructor');
        cb(null, Buffer.from(got.length > 0 ? `constructor: ${got.join()}` : 'echo'));
      },
      Count: (call: grpc.ServerWritableStream<Buffer, Buffer>) => call.end(),
      Chat: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        call.on('data', (m: Buffer) => call.write(Buffer.from(`got ${m.length}`)));
        call.on('end', () => call.end());
        call.on('error', () => {});
      },
    });
    // Few tries and a quick breaker, so a request blamed on the endpoint would show at once.
    const pair = await startGrpcSidecarPair(procs, server, { retries: { attempts: 0 }, outlierDetection: { consecutiveErrors: 3 } }, { extraArgs: ['--max-request-body', '64KiB'] });
    Object.assign(state, pair);
    web = pair.web;
    session = connectH2(`http://127.0.0.1:${web.outboundPort}`);
    session.on('error', () => {});
  });
  grpcPairTeardown(procs, () => state);

  it('answers a call with both :authority and Host; differing ones are the caller\'s bad-request, never the endpoint\'s failure', async () => {
    const same = await rawCall(session, { ':authority': 'catalog', host: 'catalog' });
    expect(same).toMatchObject({ status: 200, grpcStatus: '0' });
    for (let i = 0; i < 5; i++) {
      const differing = await rawCall(session, { ':authority': 'catalog', host: 'elsewhere' });
      expect(differing).toMatchObject({ status: 200, grpcStatus: '13', reason: 'bad-request' });
      expect(differing.message).toContain('"catalog" and "elsewhere"');
    }
    await expectNoFailureCounted(web);
    expect(await rawCall(session, { ':authority': 'catalog' })).toMatchObject({ status: 200, grpcStatus: '0' });
  });

  it('carries a field named as a member of Object.prototype (constructor) to the app as it came', async () => {
    const client = grpcClient<EchoClient>(chatDefinition, web.outboundPort);
    const metadata = new grpc.Metadata();
    metadata.set('constructor', 'x');
    const answer = await new Promise<Buffer | undefined>((resolve, reject) => client.Echo(Buffer.alloc(0), metadata, {}, (e, r) => (e ? reject(e) : resolve(r))));
    client.close();
    expect(answer?.toString()).toBe('constructor: x');
  });

  it('answers a request HTTP/2 cannot carry on (a repeated User-Agent) bad-request without blaming the endpoint', async () => {
    const head = 'POST /test.Echo/Echo HTTP/1.1\r\nHost: catalog\r\nUser-Agent: a\r\nUser-Agent: b\r\nContent-Type: application/grpc\r\nContent-Length: 5\r\n\r\n\0\0\0\0\0';
    for (let i = 0; i < 5; i++) {
      const answer = await rawHttp1(web.outboundPort, head);
      // An HTTP/1.1 gRPC caller gets its status in the head (400's gRPC status).
      expect(answer).toMatch(/^HTTP\/1.1 200/);
      expect(answer).toMatch(/grpc-status: 13\r\n/);
      expect(answer).toMatch(/x-skein-reason: bad-request\r\n/);
      expect(answer).toContain('the request cannot be sent over HTTP/2');
      // The caller's head, not its body, was at fault: the connection may serve on.
      expect(answer).not.toMatch(/\r\nconnection: close\r\n/i);
    }
    await expectNoFailureCounted(web);
    expect(await rawCall(session, { ':authority': 'catalog' })).toMatchObject({ status: 200, grpcStatus: '0' });
  });

  it('ends a bidi call whose body passes --max-request-body after the app answered with status 13 and bad-request in its trailers', async () => {
    const client = grpcClient<ChatClient>(chatDefinition, web.outboundPort);
    const call = client.Chat();
    const got: string[] = [];
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      call.on('data', (m: Buffer) => {
        got.push(m.toString());
        // The answer's head is out: now 100 KiB more than the 64 KiB allowed.
        if (got.length === 1) for (let i = 0; i < 10; i++) call.write(Buffer.alloc(10 * 1024, 'x'));
      });
      call.on('error', resolve);
      call.on('end', () => resolve({ code: grpc.status.OK } as grpc.ServiceError));
      call.write(Buffer.from('hi'));
    });
    client.close();
    expect(got[0]).toBe('got 2');
    expect(err.code).toBe(grpc.status.INTERNAL);
    expect(err.metadata.get('x-skein-reason')).toEqual(['bad-request']);
    expect(err.details).toContain('--max-request-body');
  });
});
