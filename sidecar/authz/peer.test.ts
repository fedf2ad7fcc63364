import { once } from 'node:events';
import { createServer, connect, type Server, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPki, type TestPki } from '../../test/identity/pki.js';
import type { TlsIdentity } from '../identity/provider.js';
import { inboundServerOptions } from '../identity/tls-options.js';
import { InboundPeers, type PeerRejection } from './peer.js';

let pki: TestPki;
let foreign: TestPki;
let server: Server;
let port: number;
const rejections: PeerRejection[] = [];
/** What `admit` gave for each refused caller, to be told it. */
const told: string[] = [];
/** The trust domains the server takes: its own, plus aliases while a mesh moves (control-plane-mode.ts). */
let trustDomains = ['skein.local'];

beforeAll(async () => {
  pki = await createTestPki();
  foreign = await createTestPki();
  const identity = await pki.leaf('orders');
  const peers = new InboundPeers({ trustDomains: () => trustDomains, onRejected: (reason) => rejections.push(reason) });
  // Closes a refused caller, else answers with its verified service, as the inbound pipeline's authz step would read it.
  server = createServer(inboundServerOptions(identity), (socket: TLSSocket) => {
    const refusal = peers.admit(socket);
    if (refusal !== undefined) {
      told.push(refusal);
      socket.destroy();
    } else socket.end(`hello ${peers.peerOf(socket)?.service}`);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server?.close();
  await pki?.close();
  await foreign?.close();
});

/** Connects as `client` (or without a certificate); resolves with what the server said, '' when it hung up. */
async function call(client: TlsIdentity | undefined): Promise<string> {
  const socket = connect({
    host: '127.0.0.1',
    port,
    ca: pki.ca.bundlePem,
    key: client?.keyPem,
    cert: client?.certPem,
    checkServerIdentity: () => undefined,
  });
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString()));
  await new Promise<void>((resolve) => {
    socket.on('close', () => resolve());
    socket.on('error', () => resolve());
  });
  return text;
}

async function refusedWith(client: TlsIdentity | undefined, reason: PeerRejection): Promise<void> {
  const before = rejections.length;
  expect(await call(client)).toBe('');
  expect(rejections.slice(before)).toEqual([reason]);
  // The caller is told the label alone; the detail is the log's (onRejected).
  expect(told.slice(before)).toEqual([reason]);
}

describe('inbound peer verification over real TLS handshakes', () => {
  it('admits a caller with a valid leaf and reports its service from the certificate', async () => {
    expect(await call(await pki.leaf('gateway'))).toBe('hello gateway');
  });

  it('refuses a caller without a client certificate', async () => {
    await refusedWith(undefined, 'no-client-certificate');
  });

  it('refuses a certificate from another CA', async () => {
    await refusedWith(await foreign.leaf('gateway'), 'untrusted-certificate');
  });

  it('refuses an expired certificate', async () => {
    const expired = await pki.leaf('gateway', { issuedAt: new Date(Date.now() - 3_600_000), lifetimeMs: 60_000 });
    await refusedWith(expired, 'expired-certificate');
  });

  it('refuses a certificate of our CA for another trust domain', async () => {
    await refusedWith(await pki.leaf('gateway', { trustDomain: 'evil.example' }), 'foreign-trust-domain');
  });

  it('admits a certificate of another trust domain the mesh takes (a move to a new one), and refuses it again once not', async () => {
    const moved = await pki.leaf('gateway', { trustDomain: 'new.example' });
    trustDomains = ['skein.local', 'new.example'];
    try {
      expect(await call(moved)).toBe('hello gateway');
    } finally {
      trustDomains = ['skein.local'];
    }
    await refusedWith(moved, 'foreign-trust-domain');
  });

  it('refuses a CA certificate of our root that carries a service SPIFFE ID: it is no workload leaf', async () => {
    await refusedWith(await pki.caFlaggedLeaf('gateway'), 'untrusted-certificate');
  });

  it('keeps serving good callers after refusals', async () => {
    const good = await pki.leaf('users');
    const results = await Promise.all([call(good), call(undefined), call(good)]);
    expect(results).toEqual(['hello users', '', 'hello users']);
  });
});
