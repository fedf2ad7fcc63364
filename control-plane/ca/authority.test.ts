import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer } from 'node:tls';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { splitPemCertificates } from '../../common/identity/bundle.js';
import { createCsrPem } from '../../common/identity/csr.js';
import { generateRsaKeyPair } from '../../common/identity/keys.js';
import { spiffeIdOf } from '../../common/identity/spiffe.js';
import { makeCa } from '../../test/support/certs.js';
import { CertificateAuthority } from './authority.js';
import { CaError } from './errors.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'skein-ca-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function csrFor(service: string, spiffeId?: string): Promise<string> {
  const keys = await generateRsaKeyPair();
  return createCsrPem(keys.privateKeyPem, keys.publicKeyPem, service, spiffeId);
}

/** Whether a TLS client trusting `caPem` alone accepts a server that sends `chainPem`. */
async function verifiesWith(chainPem: string, keyPem: string, caPem: string): Promise<boolean> {
  const server = createServer({ cert: chainPem, key: keyPem });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  try {
    return await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost' });
      socket.once('secureConnect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
  } finally {
    server.close();
  }
}

function issuedBy(leafPem: string, rootPem: string): boolean {
  const leaf = new X509Certificate(leafPem);
  const root = new X509Certificate(rootPem);
  return leaf.checkIssued(root) && leaf.verify(root.publicKey);
}

describe('CertificateAuthority', () => {
  it('creates a root on first start with a 0600 key, and loads the same root afterwards', async () => {
    const ca = await CertificateAuthority.open({ dataDir: dir, trustDomain: 'skein.local' });
    expect((await stat(join(dir, 'ca.key'))).mode & 0o777).toBe(0o600);
    const bundle = await readFile(join(dir, 'ca.crt'), 'utf8');
    expect(bundle).toBe(ca.bundlePem);
    expect(new X509Certificate(bundle).ca).toBe(true);

    const again = await CertificateAuthority.open({ dataDir: dir, trustDomain: 'skein.local' });
    expect(again.bundlePem).toBe(bundle);
    expect(again.phase).toBe('stable');
  });

  it('signs a CSR into a leaf with the SPIFFE URI SAN, chained to the bundle, for the configured lifetime', async () => {
    const now = new Date('2026-01-01T00:00:00Z');
    const ca = await CertificateAuthority.open({ dataDir: dir, trustDomain: 'prod.example', now: () => now });
    const leaf = ca.signCsr(await csrFor('orders'), 'orders', 5 * 60_000);
    const x = new X509Certificate(leaf.certPem);
    expect(spiffeIdOf(x)).toBe('spiffe://prod.example/service/orders');
    expect(leaf.spiffeId).toBe('spiffe://prod.example/service/orders');
    expect(new Date(x.validTo).getTime()).toBe(now.getTime() + 5 * 60_000);
    expect(leaf.notAfter.getTime()).toBe(now.getTime() + 5 * 60_000);
    expect(x.ca).toBe(false);
    expect(issuedBy(leaf.certPem, ca.bundlePem)).toBe(true);
    expect(leaf.bundlePem).toBe(ca.bundlePem);
  });

  it('accepts a renewal CSR that names its SPIFFE ID', async () => {
    const ca = await CertificateAuthority.open({ dataDir: dir, trustDomain: 'skein.local' });
    const leaf = ca.signCsr(await csrFor('orders', 'spiffe://skein.local/service/orders'), 'orders');
    expect(spiffeIdOf(new X509Certificate(leaf.certPem))).toBe('spiffe://skein.local/service/orders');
  });

  it('refuses a CSR for a foreign identity, by CN or by SPIFFE ID, and one from another trust domain', async () => {
    const ca = await CertificateAuthority.open({ dataDir: dir, trustDomain: 'skein.local' });
    const refusal = async (csr: Promise<string>) => {
      try {
        ca.signCsr(await csr, 'orders');
      } catch (err) {
        return err as CaError;
      }
      throw new Error('signed a foreign CSR');
    };
    const byCn = await refusal(csrFor('payments'));
    expect(byCn.code).toBe('identity-mismatch');
    expect(byCn.message).toMatch(/asks for service "payments".*"orders"/);
    expect((await refusal(csrFor('orders', 'spiffe://skein.local/service/payments'))).code).toBe('identity-mismatch');
    expect((await refusal(csrFor('orders', 'spiffe://evil.example/service/orders'))).message).toMatch(/trust domain evil.example/);
  });

  it('refuses to open a data dir whose CA issues identities in another trust domain, naming both and the alias that migrates', async () => {
    await CertificateAuthority.open({ dataDir: dir, trustDomain: 'old.example' });
    await expect(CertificateAuthority.open({ dataDir: dir, trustDomain: 'new.example' })).rejects.toThrow(
      `issues identities in trust domain old.example, not new.example (--trust-domain): its sidecars hold spiffe://old.example/... certificates`,
    );
    await expect(CertificateAuthority.open({ dataDir: dir, trustDomain: 'new.example' })).rejects.toThrow(/--trust-domain new\.example --trust-domain-alias old\.example/);
    // A data dir from before the record: the root's URI SAN says its trust domain.
    await rm(join(dir, 'trust-domain'));
    await expect(CertificateAuthority.open({ dataDir: dir, trustDomain: 'new.example' })).rejects.toThrow(/trust domain old\.example, not new\.example/);
    expect((await CertificateAuthority.open({ dataDir: dir, trustDomain: 'old.example' })).trustDomains).toEqual(['old.example']);
  });

  it('with the old trust domain as alias, renews an old identity into the new trust domain, and records the new one', async () => {
    await CertificateAuthority.open({ dataDir: dir, trustDomain: 'old.example' });
    const ca = await CertificateAuthority.open({ dataDir: dir, trustDomain: 'new.example', trustDomainAliases: ['old.example'] });
    expect(ca.trustDomains).toEqual(['new.example', 'old.example']);
    const leaf = ca.signCsr(await csrFor('orders', 'spiffe://old.example/service/orders'), 'orders');
    expect(spiffeIdOf(new X509Certificate(leaf.certPem))).toBe('spiffe://new.example/service/orders');
    await expect(csrFor('orders', 'spiffe://evil.example/service/orders').then((csr) => ca.signCsr(csr, 'orders'))).rejects.toThrow(
      'CSR asks for trust domain evil.example; this CA serves new.example (and its alias old.example)',
    );
    expect((await readFile(join(dir, 'trust-domain'), 'utf8')).trim()).toBe('new.example');
    // Moved: the alias is no longer needed to start.
    expect((await CertificateAuthority.open({ dataDir: dir, trustDomain: 'new.example' })).trustDomains).toEqual(['new.example']);
  });

  it('refuses garbage and tampered CSRs', async () => {
    const ca = await CertificateAuthority.open({ dataDir: dir, trustDomain: 'skein.local' });
    expect(() => ca.signCsr('not a csr', 'orders')).toThrow(/certificate signing request/);
    const csr = await csrFor('orders');
    const body = csr.split('\n');
    // Flip one character of the signed body: the signature no longer verifies (or it no longer parses).
    const line = body[3]!;
    body[3] = line.slice(0, 10) + (line[10] === 'A' ? 'B' : 'A') + line.slice(11);
    expect(() => ca.signCsr(body.join('\n'), 'orders')).toThrow(CaError);
  });

  it('imports an operator-supplied root and refuses a key that does not match it', async () => {
    const other = await mkdtemp(join(tmpdir(), 'skein-ca-op-'));
    try {
      const operator = await CertificateAuthority.open({ dataDir: other, trustDomain: 'skein.local' });
      const certFile = join(other, 'ca.crt');
      const keyFile = join(other, 'ca.key');
      const ca = await CertificateAuthority.open({ dataDir: dir, trustDomain: 'skein.local', caCertFile: certFile, caKeyFile: keyFile });
      expect(ca.bundlePem).toBe(operator.bundlePem);
      expect((await stat(join(dir, 'ca.key'))).mode & 0o777).toBe(0o600);

      const wrongKey = join(other, 'wrong.key');
      await writeFile(wrongKey, (await generateRsaKeyPair()).privateKeyPem);
      await expect(CertificateAuthority.open({ dataDir: join(dir, 'x'), trustDomain: 'skein.local', caCertFile: certFile, caKeyFile: wrongKey })).rejects.toThrow(
        /does not match any certificate/,
      );
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it('keeps the root a rotation put in place when restarted with the operator root it rotated away from, and takes a new operator root', async () => {
    const other = await mkdtemp(join(tmpdir(), 'skein-ca-op-'));
    try {
      await CertificateAuthority.open({ dataDir: other, trustDomain: 'skein.local' });
      const flags = { trustDomain: 'skein.local', caCertFile: join(other, 'ca.crt'), caKeyFile: join(other, 'ca.key') };
      const operatorRoot = await readFile(flags.caCertFile, 'utf8');
      const ca = await CertificateAuthority.open({ dataDir: dir, ...flags });
      await ca.stageNewRoot();
      await ca.switchToNextRoot();
      await ca.retireOldRoots();
      const rotated = ca.bundlePem;
      expect(rotated).not.toBe(operatorRoot);

      // Restarted with the same flags, as a service unit would be: the rotation stands.
      const restarted = await CertificateAuthority.open({ dataDir: dir, ...flags });
      expect(restarted.bundlePem).toBe(rotated);
      expect(issuedBy(restarted.signCsr(await csrFor('a'), 'a').certPem, rotated)).toBe(true);
      expect(await readFile(join(dir, 'ca.crt'), 'utf8')).toBe(rotated);

      // A data dir from before the import was recorded: the cross certificate shows it rotated away.
      await rm(join(dir, 'ca-imported.sha256'));
      expect((await CertificateAuthority.open({ dataDir: dir, ...flags })).bundlePem).toBe(rotated);

      // A root the data dir never had is the operator rolling out a new one: it is taken.
      const next = await mkdtemp(join(tmpdir(), 'skein-ca-op2-'));
      try {
        const nextRoot = (await CertificateAuthority.open({ dataDir: next, trustDomain: 'skein.local' })).bundlePem;
        const rolled = await CertificateAuthority.open({ dataDir: dir, trustDomain: 'skein.local', caCertFile: join(next, 'ca.crt'), caKeyFile: join(next, 'ca.key') });
        expect(rolled.bundlePem).toBe(nextRoot);
      } finally {
        await rm(next, { recursive: true, force: true });
      }
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it('refuses at start an operator root that signs but has expired, not one it rotated away from', async () => {
    // A minute is room for the rotation's key generation on a loaded machine; the clock is then
    // moved past it, rather than waited for.
    const notAfter = new Date(Date.now() + 60_000);
    const shortLived = makeCa('Short-lived Root', { notAfter });
    const flags = { trustDomain: 'skein.local', caCertFile: join(dir, 'op.crt'), caKeyFile: join(dir, 'op.key') };
    await writeFile(flags.caCertFile, shortLived.certPem);
    await writeFile(flags.caKeyFile, shortLived.keyPem);
    const rotatedDir = join(dir, 'rotated');
    const ca = await CertificateAuthority.open({ dataDir: rotatedDir, ...flags });
    await ca.stageNewRoot();
    await ca.switchToNextRoot();
    await ca.retireOldRoots();
    await CertificateAuthority.open({ dataDir: join(dir, 'signing'), ...flags });
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(notAfter.getTime() + 1_000);
      expect((await CertificateAuthority.open({ dataDir: rotatedDir, ...flags })).bundlePem).toBe(ca.bundlePem);
      await expect(CertificateAuthority.open({ dataDir: join(dir, 'signing'), ...flags })).rejects.toThrow(/op\.crt: the CA certificate expired at /);
      await expect(CertificateAuthority.open({ dataDir: join(dir, 'fresh'), ...flags })).rejects.toThrow(/op\.crt: the CA certificate expired at /);
    } finally {
      vi.useRealTimers();
    }
  });

  it("ends a leaf no later than the root that signs it, whatever its lifetime, so its expiry says when it stops verifying", async () => {
    const rootEnds = new Date(Date.now() + 3_600_000);
    const root = makeCa('Root ending in an hour', { notAfter: rootEnds });
    const flags = { trustDomain: 'skein.local', caCertFile: join(dir, 'op.crt'), caKeyFile: join(dir, 'op.key') };
    await writeFile(flags.caCertFile, root.certPem);
    await writeFile(flags.caKeyFile, root.keyPem);
    const ca = await CertificateAuthority.open({ dataDir: dir, ...flags, leafLifetimeMs: 24 * 3_600_000 });
    const leaf = ca.signCsr(await csrFor('a'), 'a');
    const rootAfter = Date.parse(new X509Certificate(root.certPem).validTo);
    expect(leaf.notAfter.getTime()).toBe(rootAfter);
    expect(Date.parse(new X509Certificate(leaf.certPem).validTo)).toBe(rootAfter);
  });

  it('rotates the root in three persisted steps: stage, switch, retire', async () => {
    const ca = await CertificateAuthority.open({ dataDir: dir, trustDomain: 'skein.local' });
    const oldRoot = ca.bundlePem;
    const changes: string[] = [];
    ca.onChange(() => changes.push(ca.phase));

    await ca.stageNewRoot();
    expect(ca.phase).toBe('staged');
    const [first, second] = splitPemCertificates(ca.bundlePem);
    expect(first).toBe(oldRoot);
    expect(issuedBy(ca.signCsr(await csrFor('a'), 'a').certPem, oldRoot)).toBe(true);
    await expect(ca.stageNewRoot()).rejects.toThrow(/already in progress/);
    // The staged state survives a restart.
    expect((await CertificateAuthority.open({ dataDir: dir, trustDomain: 'skein.local' })).phase).toBe('staged');

    await ca.switchToNextRoot();
    expect(ca.phase).toBe('switched');
    const leaf = ca.signCsr(await csrFor('a'), 'a');
    expect(issuedBy(leaf.certPem, second!)).toBe(true);
    expect(splitPemCertificates(leaf.bundlePem)).toHaveLength(2);
    expect((await CertificateAuthority.open({ dataDir: dir, trustDomain: 'skein.local' })).phase).toBe('switched');

    await ca.retireOldRoots();
    expect(ca.phase).toBe('stable');
    expect(splitPemCertificates(await readFile(join(dir, 'ca.crt'), 'utf8'))).toEqual([second]);
    expect(changes).toEqual(['staged', 'switched', 'stable']);
  });

  it('sends the new root cross-signed by the old one with its server certificate, so a copy of the old ca.crt still verifies it', async () => {
    const ca = await CertificateAuthority.open({ dataDir: dir, trustDomain: 'skein.local' });
    const oldBundle = ca.bundlePem;
    const keys = await generateRsaKeyPair();
    expect(splitPemCertificates(ca.issueServerCert(keys, ['localhost'], 60_000).chainPem)).toHaveLength(1);
    await ca.stageNewRoot();
    await ca.switchToNextRoot();
    await ca.retireOldRoots();
    const reopened = await CertificateAuthority.open({ dataDir: dir, trustDomain: 'skein.local' });
    const { chainPem } = reopened.issueServerCert(keys, ['localhost'], 60_000);
    expect(await verifiesWith(chainPem, keys.privateKeyPem, reopened.bundlePem)).toBe(true);
    expect(await verifiesWith(chainPem, keys.privateKeyPem, oldBundle)).toBe(true);
    // The server certificate alone, as before: only the new root verifies it.
    const [leafPem] = splitPemCertificates(chainPem);
    expect(await verifiesWith(leafPem!, keys.privateKeyPem, oldBundle)).toBe(false);
  });
});
