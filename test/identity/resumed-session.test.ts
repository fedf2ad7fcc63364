/**
 * The control plane's gRPC port lets a caller resume a TLS session, and OpenSSL keeps the
 * verdict of the handshake that began it: a session ticket got while a leaf was valid still
 * reads as an authorized client certificate once the leaf has expired. "An expired leaf
 * authenticates nothing" (README, Identity): neither a renewal (`Sign` without a token) nor a
 * push stream may rest on it. Real control plane, real TLS resumption (TLS 1.3 tickets).
 * Nor does a CA certificate of the mesh's root that carries a service's SPIFFE ID (SPIFFE
 * X509-SVID: a leaf is no CA), which OpenSSL takes as a client certificate.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCsrPem } from '../../common/identity/csr.js';
import { generateRsaKeyPair } from '../../common/identity/keys.js';
import { createToken, startControlPlane, type ControlPlaneProcess } from '../control-plane/harness.js';
import { Processes, waitUntil } from '../support/index.js';
import { caFlaggedLeafOf } from './pki.js';

const procs = new Processes();
let cp: ControlPlaneProcess;

beforeAll(async () => {
  cp = await startControlPlane(procs, { args: ['--cert-ttl', '3s'] });
}, 60_000);

afterAll(() => procs.killAll());

/** A gRPC frame of a SignRequest (field 1 csr_pem, field 2 token: both strings). */
function signRequestFrame(csrPem: string, token: string): Buffer {
  const field = (no: number, text: string): Buffer => {
    if (text === '') return Buffer.alloc(0);
    const bytes = Buffer.from(text);
    const len: number[] = [];
    for (let n = bytes.length; ; n >>>= 7) {
      if (n < 0x80) {
        len.push(n);
        break;
      }
      len.push((n & 0x7f) | 0x80);
    }
    return Buffer.concat([Buffer.from([(no << 3) | 2, ...len]), bytes]);
  };
  const body = Buffer.concat([field(1, csrPem), field(2, token)]);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** The first string field (cert_pem) of a SignResponse frame. */
function certOf(frame: Buffer): string {
  let p = 5;
  expect(frame[p++]).toBe((1 << 3) | 2);
  let len = 0;
  for (let shift = 0; ; shift += 7) {
    const b = frame[p++]!;
    len |= (b & 0x7f) << shift;
    if (b < 0x80) break;
  }
  return frame.subarray(p, p + len).toString();
}

interface SignAnswer {
  readonly status: string | undefined;
  readonly message: string | undefined;
  readonly certPem?: string;
}

async function sign(session: ClientHttp2Session, csrPem: string, token: string): Promise<SignAnswer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': '/skein.v1.Mesh/Sign', 'content-type': 'application/grpc', te: 'trailers' });
    const chunks: Buffer[] = [];
    let trailers: Record<string, unknown> = {};
    stream.on('response', (headers) => {
      if (headers['grpc-status'] !== undefined) trailers = headers;
    });
    stream.on('trailers', (t) => {
      trailers = t;
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const data = Buffer.concat(chunks);
      resolve({
        status: trailers['grpc-status'] as string | undefined,
        message: trailers['grpc-message'] === undefined ? undefined : decodeURIComponent(String(trailers['grpc-message'])),
        certPem: data.length > 5 ? certOf(data) : undefined,
      });
    });
    stream.on('error', reject);
    stream.end(signRequestFrame(csrPem, token));
  });
}

/** An HTTP/2 session to the gRPC port over `socket`'s TLS, once connected. */
function session(socket: () => TLSSocket): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = h2connect(`https://127.0.0.1:${cp.grpcPort}`, { createConnection: socket });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

async function csr(service: string): Promise<string> {
  const keys = await generateRsaKeyPair();
  return createCsrPem(keys.privateKeyPem, keys.publicKeyPem, service);
}

describe('control plane: a resumed TLS session', () => {
  it('does not let an expired leaf renew itself', async () => {
    const ca = readFileSync(cp.caFile, 'utf8');
    const tlsTo = (extra: object): TLSSocket =>
      tlsConnect({ host: '127.0.0.1', port: cp.grpcPort, servername: 'localhost', ca, ALPNProtocols: ['h2'], ...extra });

    // A leaf for orders, bootstrapped with a token.
    const keys = await generateRsaKeyPair();
    const boot = await session(() => tlsTo({}));
    const first = await sign(boot, createCsrPem(keys.privateKeyPem, keys.publicKeyPem, 'orders'), await createToken(cp, 'orders'));
    boot.close();
    expect(first.status).toBe('0');
    const leaf = first.certPem!;
    const notAfter = Date.parse(new X509Certificate(leaf).validTo);

    // While it is valid it renews (no token), and the connection leaves a session ticket.
    let ticket: Buffer | undefined;
    const valid = await session(() => tlsTo({ key: keys.privateKeyPem, cert: leaf }).on('session', (t: Buffer) => (ticket = t)));
    const renewed = await sign(valid, await csr('orders'), '');
    expect(renewed.status).toBe('0');
    await waitUntil(() => ticket !== undefined, { what: 'a TLS session ticket' });
    valid.close();

    await waitUntil(() => Date.now() > notAfter + 500, { what: 'the leaf to expire', timeoutMs: 10_000 });
    const before = (await cp.api.get<{ signing: Record<string, number> }>('/api/v1/ca')).body.signing;

    let reused: boolean | undefined;
    const resumed = await session(() => {
      const socket = tlsTo({ key: keys.privateKeyPem, cert: leaf, session: ticket });
      socket.once('secureConnect', () => (reused = socket.isSessionReused()));
      return socket;
    });
    const answer = await sign(resumed, await csr('orders'), '');
    resumed.close();
    // Without resumption the test would prove nothing: a full handshake never authorized the expired leaf.
    expect(reused).toBe(true);
    expect(answer.certPem).toBeUndefined();
    expect(answer.status).toBe('16'); // UNAUTHENTICATED
    expect(answer.message).toMatch(/no bootstrap token and no valid client certificate/);
    const after = (await cp.api.get<{ signing: Record<string, number> }>('/api/v1/ca')).body.signing;
    expect(after.unauthenticated).toBe((before.unauthenticated ?? 0) + 1);
    expect(after.issued).toBe(before.issued);
  }, 30_000);

  it('does not take a CA certificate of its root for a service\'s identity', async () => {
    const ca = readFileSync(cp.caFile, 'utf8');
    const flagged = await caFlaggedLeafOf(cp.dataDir, ca, 'skein.local', 'orders');
    const s = await session(() => tlsConnect({ host: '127.0.0.1', port: cp.grpcPort, servername: 'localhost', ca, ALPNProtocols: ['h2'], key: flagged.keyPem, cert: flagged.certPem }));
    const answer = await sign(s, await csr('orders'), '');
    s.close();
    expect(answer.certPem).toBeUndefined();
    expect(answer.status).toBe('16'); // UNAUTHENTICATED
    expect(answer.message).toMatch(/no bootstrap token and no valid client certificate/);
  }, 30_000);
});
