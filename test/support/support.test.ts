import { once } from 'node:events';
import { connect, createServer } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { freePorts, makeCa, makeLeaf, startUpstream } from './index.js';

describe('test support', () => {
  it('makes certificates that verify against their CA, with a SPIFFE URI SAN, and not against another CA', async () => {
    const ca = makeCa();
    const other = makeCa('Other CA');
    const server = makeLeaf(ca, 'catalog');
    const client = makeLeaf(ca, 'orders');
    const tls = createServer({ cert: server.certPem, key: server.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true }, (s) => s.end('hi'));
    tls.listen(0, '127.0.0.1');
    await once(tls, 'listening');
    const port = (tls.address() as { port: number }).port;
    try {
      const socket = connect({ port, host: '127.0.0.1', cert: client.certPem, key: client.keyPem, ca: ca.certPem, checkServerIdentity: () => undefined });
      await once(socket, 'secureConnect');
      expect(socket.getPeerCertificate().subjectaltname).toBe('URI:spiffe://skein.local/service/catalog');
      socket.destroy();
      const bad = connect({ port, host: '127.0.0.1', cert: client.certPem, key: client.keyPem, ca: other.certPem, checkServerIdentity: () => undefined });
      const [err] = (await once(bad, 'error')) as [NodeJS.ErrnoException];
      expect(err.code).toMatch(/UNABLE_TO_VERIFY|SELF_SIGNED|UNABLE_TO_GET_ISSUER/);
    } finally {
      tls.close();
    }
  });

  it('allocates distinct ports and serves an upstream that records requests', async () => {
    const ports = await freePorts(5);
    expect(new Set(ports).size).toBe(5);
    const up = await startUpstream();
    try {
      const res = await fetch(`${up.url}/x?y=1`);
      expect(await res.json()).toMatchObject({ name: 'upstream', path: '/x?y=1' });
      expect(up.requests.map((r) => r.url)).toEqual(['/x?y=1']);
    } finally {
      await up.close();
    }
  });
});
