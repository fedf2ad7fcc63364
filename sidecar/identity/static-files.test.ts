import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { createTestPki, type TestPki } from '../../test/identity/pki.js';
import { makeCa, makeLeaf, writeIdentity, type LeafOptions } from '../../test/support/certs.js';
import type { TlsIdentity } from './provider.js';
import { StaticFilesIdentityProvider, readIdentityFiles } from './static-files.js';

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});
afterAll(async () => {
  await pki?.close();
});

function write(name: string, identity: TlsIdentity) {
  const files = { certFile: join(pki.dir, `${name}.crt`), keyFile: join(pki.dir, `${name}.key`), caFile: join(pki.dir, `${name}-ca.crt`) };
  writeFileSync(files.certFile, identity.certPem);
  writeFileSync(files.keyFile, identity.keyPem);
  writeFileSync(files.caFile, identity.caPem);
  return files;
}

describe('static identity files', () => {
  it('reads the SPIFFE ID and expiry, and refuses a key that is not the certificate’s', async () => {
    const a = await pki.leaf('orders');
    const files = write('a', a);
    const read = readIdentityFiles(files.certFile, files.keyFile, files.caFile, 'orders');
    expect(read.spiffeId).toBe('spiffe://skein.local/service/orders');
    expect(read.notAfter.getTime()).toBe(Math.floor(a.notAfter.getTime() / 1000) * 1000);
    writeFileSync(files.keyFile, (await pki.leaf('orders')).keyPem);
    expect(() => readIdentityFiles(files.certFile, files.keyFile, files.caFile, 'orders')).toThrow(/is not the private key of/);
  });

  it('refuses a certificate that peers would refuse: expired, not yet valid, from another CA, for another service; and a CA file without certificates', async () => {
    const leaf = await pki.leaf('orders');
    const files = write('c', leaf);
    const later = leaf.notAfter.getTime() + 1000;
    expect(() => readIdentityFiles(files.certFile, files.keyFile, files.caFile, 'orders', later)).toThrow(/c\.crt: the certificate expired at /);
    expect(() => readIdentityFiles(files.certFile, files.keyFile, files.caFile, 'orders', Date.parse('2000-01-01'))).toThrow(/is not valid before/);
    expect(() => readIdentityFiles(files.certFile, files.keyFile, files.caFile, 'payments')).toThrow(/c\.crt: the certificate is for service orders \(spiffe:\/\/skein\.local\/service\/orders\), not payments/);
    writeFileSync(files.caFile, 'not PEM\n');
    expect(() => readIdentityFiles(files.certFile, files.keyFile, files.caFile, 'orders')).toThrow(/c-ca\.crt: no PEM certificate in it/);
    const other = await createTestPki();
    try {
      const foreign = write('d', { ...leaf, caPem: (await other.leaf('orders')).caPem });
      expect(() => readIdentityFiles(foreign.certFile, foreign.keyFile, foreign.caFile, 'orders')).toThrow(/d\.crt: the certificate was not issued by a CA of .*d-ca\.crt/);
    } finally {
      await other.close();
    }
  });

  it('refuses a certificate whose key usage peers would refuse: not for both TLS server and client, or not for signatures', () => {
    const ca = makeCa();
    const check = (name: string, options: LeafOptions) => {
      const files = writeIdentity(pki.dir, name, makeLeaf(ca, 'orders', options));
      return () => readIdentityFiles(files.certFile, files.keyFile, files.caFile, 'orders');
    };
    expect(check('eku-server', { extKeyUsage: { serverAuth: true } })).toThrow(/eku-server\.crt: the certificate's extended key usage lacks clientAuth/);
    expect(check('eku-client', { extKeyUsage: { clientAuth: true } })).toThrow(/eku-client\.crt: the certificate's extended key usage lacks serverAuth/);
    expect(check('eku-email', { extKeyUsage: { emailProtection: true } })).toThrow(/lacks serverAuth and clientAuth/);
    expect(check('ku-encipher', { keyUsage: { keyEncipherment: true } })).toThrow(/ku-encipher\.crt: the certificate's key usage lacks digitalSignature/);
    expect(check('ku-sign', { keyUsage: { digitalSignature: true } })().spiffeId).toBe('spiffe://skein.local/service/orders');
  });

  it('refuses a certificate issued by a CA of --ca-file that has expired or is not valid yet', () => {
    const day = 24 * 3_600_000;
    for (const [name, validity] of [
      ['old-ca', { notBefore: new Date(Date.now() - 10 * day), notAfter: new Date(Date.now() - day) }],
      ['new-ca', { notBefore: new Date(Date.now() + day), notAfter: new Date(Date.now() + 10 * day) }],
    ] as const) {
      const files = writeIdentity(pki.dir, name, makeLeaf(makeCa(`CA ${name}`, validity), 'orders'));
      expect(() => readIdentityFiles(files.certFile, files.keyFile, files.caFile, 'orders')).toThrow(new RegExp(`${name}\\.crt: the certificate is issued through .*CN=CA ${name}.*, which is valid from .* only, so peers would refuse it`));
    }
  });

  it('refuses a CA certificate as its own leaf', async () => {
    const files = write('ca-flagged', await pki.caFlaggedLeaf('orders'));
    expect(() => readIdentityFiles(files.certFile, files.keyFile, files.caFile, 'orders')).toThrow(/ca-flagged\.crt: the certificate is a CA certificate \(basicConstraints CA:TRUE\)/);
  });

  it('announces a new identity when the files change, and ignores a half-written set', async () => {
    const files = write('b', await pki.leaf('orders'));
    const provider = new StaticFilesIdentityProvider({ ...files, service: 'orders', logger: createLogger('test', 'silent'), pollMs: 20 });
    try {
      const changed = new Promise<TlsIdentity>((resolve) => provider.onChange(resolve));
      const next = await pki.leaf('orders');
      // Certificate first, key later: in between the pair does not match and must not be used.
      writeFileSync(files.certFile, next.certPem);
      await new Promise((r) => setTimeout(r, 100));
      expect(provider.current().certPem).not.toBe(next.certPem);
      writeFileSync(files.keyFile, next.keyPem);
      expect((await changed).certPem).toBe(next.certPem);
      expect(provider.current().keyPem).toBe(next.keyPem);
    } finally {
      await provider.close();
    }
  });
});
