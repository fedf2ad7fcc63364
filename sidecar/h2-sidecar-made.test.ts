/** The token that marks a peer sidecar's own HTTP/2 answers, over real TLS and h2c sessions on 127.0.0.1. */
import { connect as h2connect, createSecureServer, createServer, type ClientHttp2Session, type Http2SecureServer, type Http2Server, type ServerHttp2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { makeCa, makeLeaf } from '../test/support/certs.js';
import { madeByPeerSidecar, sessionToken, SIDECAR_MADE_HEADER } from './h2-sidecar-made.js';

const leaf = makeLeaf(makeCa(), 'catalog');

const servers: (Http2Server | Http2SecureServer)[] = [];
const clients: ClientHttp2Session[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

/** Both ends of one session, once the client has the server's SETTINGS. */
async function session(tls: boolean): Promise<{ client: ClientHttp2Session; server: ServerHttp2Session }> {
  const s = tls ? createSecureServer({ key: leaf.keyPem, cert: leaf.certPem }) : createServer();
  servers.push(s);
  const serverSide = new Promise<ServerHttp2Session>((resolve) => s.once('session', resolve));
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  const client = tls ? h2connect(`https://127.0.0.1:${port}`, { ca: leaf.caPem, checkServerIdentity: () => undefined }) : h2connect(`http://127.0.0.1:${port}`);
  clients.push(client);
  await new Promise((resolve) => client.once('remoteSettings', resolve));
  return { client, server: await serverSide };
}

describe('sessionToken', () => {
  it('is the same at both ends of a TLS connection, and another connection has another', async () => {
    const first = await session(true);
    const token = sessionToken(first.client);
    expect(token).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(sessionToken(first.server)).toBe(token);
    const second = await session(true);
    expect(sessionToken(second.client)).not.toBe(token);
    expect(sessionToken(second.server)).toBe(sessionToken(second.client));
  });

  it('is none without TLS (h2c, the local app) and without a session', async () => {
    const { client, server } = await session(false);
    expect(sessionToken(client)).toBeUndefined();
    expect(sessionToken(server)).toBeUndefined();
    expect(sessionToken(undefined)).toBeUndefined();
  });
});

describe('madeByPeerSidecar', () => {
  it('believes a head with the session\'s own token only', async () => {
    const { client, server } = await session(true);
    const token = sessionToken(server)!;
    expect(madeByPeerSidecar(client, { [SIDECAR_MADE_HEADER]: token })).toBe(true);
    expect(madeByPeerSidecar(client, { [SIDECAR_MADE_HEADER]: `${token[0] === 'A' ? 'B' : 'A'}${token.slice(1)}` })).toBe(false);
    expect(madeByPeerSidecar(client, { 'x-skein-reason': 'upstream-connect-failure' })).toBe(false);
    // Another connection's token means nothing on this one.
    const other = await session(true);
    expect(madeByPeerSidecar(client, { [SIDECAR_MADE_HEADER]: sessionToken(other.server)! })).toBe(false);
  });

  it('never believes a head on a session without TLS, whatever it says', async () => {
    const { client } = await session(false);
    expect(madeByPeerSidecar(client, { [SIDECAR_MADE_HEADER]: '' })).toBe(false);
    expect(madeByPeerSidecar(client, { [SIDECAR_MADE_HEADER]: 'undefined' })).toBe(false);
  });
});
