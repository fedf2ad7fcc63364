import { once } from 'node:events';
import { connect, createServer, type Server, type TLSSocket, type TlsOptions } from 'node:tls';
import { connect as tcpConnect, type AddressInfo, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spiffeIdOf } from '../../common/identity/spiffe.js';
import { createTestPki, type TestPki } from '../../test/identity/pki.js';
import type { TlsIdentity } from './provider.js';
import { abandonHandshake, clientHello } from '../../test/support/client-hello.js';
import { PEER_IDENTITY_ERROR, inboundHandshakeFailureReason, inboundServerOptions, outboundConnectOptions, outboundHandshakeFailureReason, refusalAlert, secureContextFor, secureContextOptions } from './tls-options.js';

let pki: TestPki;
const servers: Server[] = [];

beforeAll(async () => {
  pki = await createTestPki();
});
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});
afterAll(async () => {
  await pki?.close();
});

async function serve(identity: TlsIdentity, options: TlsOptions = {}): Promise<{ server: Server; port: number }> {
  const server = createServer({ ...inboundServerOptions(identity), ...options }, (socket: TLSSocket) => socket.write('ok'));
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

/** Opens an outbound connection to `destination`; resolves with the server's SPIFFE ID or the error. */
async function dial(client: TlsIdentity, port: number, destination: string): Promise<{ id?: string; error?: Error & { code?: string }; socket?: TLSSocket }> {
  const socket = connect({ host: '127.0.0.1', port, ...outboundConnectOptions(client, secureContextFor(client), destination) });
  return new Promise((resolve) => {
    socket.once('secureConnect', () => resolve({ id: spiffeIdOf(socket.getPeerCertificate()), socket }));
    socket.once('error', (error) => resolve({ error }));
  });
}

describe('outbound SPIFFE verification', () => {
  it('connects when the server is the destination service', async () => {
    const { port } = await serve(await pki.leaf('catalog'));
    const r = await dial(await pki.leaf('gateway'), port, 'catalog');
    expect(r.id).toBe('spiffe://skein.local/service/catalog');
    r.socket?.destroy();
  });

  it('refuses a server presenting another service identity, whatever its hostname', async () => {
    const { port } = await serve(await pki.leaf('payments'));
    const r = await dial(await pki.leaf('gateway'), port, 'catalog');
    expect(r.error?.code).toBe(PEER_IDENTITY_ERROR);
    expect(r.error?.message).toBe('upstream presented identity spiffe://skein.local/service/payments, expected spiffe://skein.local/service/catalog');
    expect(outboundHandshakeFailureReason(r.error!)).toBe('wrong-identity');
  });

  it('takes the destination service in a trust domain the control plane also takes (a move to a new one), and no other service there', async () => {
    const { port } = await serve(await pki.leaf('catalog', { trustDomain: 'new.example' }));
    const gateway = await pki.leaf('gateway');
    const refused = await dial(gateway, port, 'catalog');
    expect(refused.error?.message).toBe('upstream presented identity spiffe://new.example/service/catalog, expected spiffe://skein.local/service/catalog');
    const moving = { ...gateway, peerTrustDomains: ['new.example', 'skein.local'] };
    const r = await dial(moving, port, 'catalog');
    expect(r.id).toBe('spiffe://new.example/service/catalog');
    r.socket?.destroy();
    const other = await dial(moving, port, 'payments');
    expect(other.error?.message).toBe('upstream presented identity spiffe://new.example/service/catalog, expected spiffe://skein.local/service/payments (or trust domain new.example)');
  });

  it('refuses a server presenting a CA certificate, even one naming the destination service', async () => {
    const { port } = await serve(await pki.caFlaggedLeaf('catalog'));
    const r = await dial(await pki.leaf('gateway'), port, 'catalog');
    expect(r.error?.code).toBe(PEER_IDENTITY_ERROR);
    expect(r.error?.message).toMatch(/^upstream presented a CA certificate \(basicConstraints CA:TRUE\) for spiffe:\/\/skein\.local\/service\/catalog/);
    expect(outboundHandshakeFailureReason(r.error!)).toBe('wrong-identity');
  });

  it('refuses an expired server certificate and one from another CA', async () => {
    const expired = await serve(await pki.leaf('catalog', { issuedAt: new Date(Date.now() - 3_600_000), lifetimeMs: 60_000 }));
    const r1 = await dial(await pki.leaf('gateway'), expired.port, 'catalog');
    expect(outboundHandshakeFailureReason(r1.error!)).toBe('expired-certificate');

    const other = await createTestPki();
    try {
      const stranger = await serve(await other.leaf('catalog'));
      const r2 = await dial(await pki.leaf('gateway'), stranger.port, 'catalog');
      expect(outboundHandshakeFailureReason(r2.error!)).toBe('untrusted-certificate');
    } finally {
      await other.close();
    }
  });

  it('swaps the server certificate for new connections while an open one keeps working', async () => {
    const first = await pki.leaf('catalog');
    const { server, port } = await serve(first);
    const client = await pki.leaf('gateway');
    const before = await dial(client, port, 'catalog');
    const serialBefore = before.socket!.getPeerCertificate().serialNumber;

    server.setSecureContext(secureContextOptions(await pki.leaf('catalog')));
    const after = await dial(client, port, 'catalog');
    expect(after.socket!.getPeerCertificate().serialNumber).not.toBe(serialBefore);

    // The connection opened before the swap still carries data.
    const echoed = once(before.socket!, 'data');
    expect(String((await echoed)[0])).toBe('ok');
    before.socket!.destroy();
    after.socket!.destroy();
  });
});

describe('handshake failure reasons', () => {
  it('outbound: a peer that resets or closes the connection mid-handshake is `reset`', () => {
    expect(outboundHandshakeFailureReason({ code: 'ECONNRESET' })).toBe('reset');
    expect(outboundHandshakeFailureReason({ code: 'EPIPE' })).toBe('reset');
  });

  it('outbound: a peer\'s alert refusing this sidecar\'s certificate is `refused-by-peer`; other alerts stay `protocol`', () => {
    for (const code of ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED', 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED']) {
      expect(outboundHandshakeFailureReason({ code })).toBe('refused-by-peer');
    }
    expect(refusalAlert('ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED')).toBe('certificate expired');
    // A handshake_failure alert says no more than that (no shared cipher, a TLS 1.2 server wanting a certificate).
    expect(outboundHandshakeFailureReason({ code: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' })).toBe('protocol');
    expect(refusalAlert('constructor')).toBeUndefined();
  });

  /** The reason `inboundHandshakeFailureReason` gives the server's 'tlsClientError' for a caller that does `act` to `port`. */
  async function inboundReason(server: Server, port: number, act: (port: number) => Promise<unknown>): Promise<string | undefined> {
    const failed = once(server, 'tlsClientError') as Promise<[Error, TLSSocket]>;
    await act(port);
    const [err, socket] = await failed;
    return inboundHandshakeFailureReason(err, socket);
  }

  it('inbound: a caller that closes or resets before sending a byte (a port scan, a TCP probe) began no handshake; one that does after its ClientHello is `reset`', async () => {
    const { server, port } = await serve(await pki.leaf('catalog'));
    const hello = await clientHello();
    expect(await inboundReason(server, port, (p) => abandonHandshake(p, 'close'))).toBeUndefined();
    expect(await inboundReason(server, port, (p) => abandonHandshake(p, 'reset'))).toBeUndefined();
    expect(await inboundReason(server, port, (p) => abandonHandshake(p, 'close', hello))).toBe('reset');
    expect(await inboundReason(server, port, (p) => abandonHandshake(p, 'reset', hello))).toBe('reset');
  });

  it('inbound: a caller silent until the handshake timeout (a probe, an idle connection) began no handshake; one that stalls after part of its ClientHello is `timeout`', async () => {
    const { server, port } = await serve(await pki.leaf('catalog'), { handshakeTimeout: 500 });
    const hello = await clientHello();
    const callers: Socket[] = [];
    /** Connects to `port` and sends `bytes`, then neither more nor a close: the server's timeout ends it. */
    const stall = async (p: number, bytes: Buffer): Promise<void> => {
      const socket = tcpConnect(p, '127.0.0.1');
      callers.push(socket);
      socket.on('error', () => {});
      await once(socket, 'connect');
      if (bytes.length > 0) await new Promise((resolve) => socket.write(bytes, resolve));
    };
    try {
      expect(await inboundReason(server, port, (p) => stall(p, Buffer.alloc(0)))).toBeUndefined();
      expect(await inboundReason(server, port, (p) => stall(p, hello.subarray(0, hello.length >> 1)))).toBe('timeout');
    } finally {
      for (const socket of callers) socket.destroy();
    }
  });
});
