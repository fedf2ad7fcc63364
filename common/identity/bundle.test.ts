import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeCa } from '../../test/support/certs.js';
import { tempDir } from '../../test/support/index.js';
import { bundleCertificates, readTrustBundle, TrustBundleError } from './bundle.js';

const first = makeCa('Root One');
const second = makeCa('Root Two');

describe('trust bundles', () => {
  it('parses every certificate of a bundle, in order', () => {
    const certs = bundleCertificates(`${first.certPem}\n${second.certPem}`, 'ca.crt');
    expect(certs.map((c) => c.subject)).toEqual([expect.stringContaining('Root One'), expect.stringContaining('Root Two')]);
  });

  it('names the file and what is wrong: none in it, or which one does not parse', () => {
    expect(() => bundleCertificates('not a certificate\n', '/etc/skein/ca.crt')).toThrow(new TrustBundleError('/etc/skein/ca.crt: no PEM certificate in it'));
    const garbled = `${first.certPem}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n`;
    expect(() => bundleCertificates(garbled, '/etc/skein/ca.crt')).toThrow(/^\/etc\/skein\/ca\.crt: certificate 2 of 2 does not parse \(.+\)$/);
  });

  it('reads a bundle file, naming one it cannot read by the error code', () => {
    const dir = tempDir('skein-bundle-');
    const file = join(dir, 'ca.crt');
    writeFileSync(file, first.certPem);
    const bundle = readTrustBundle(file);
    expect(bundle.pem).toBe(first.certPem);
    expect(bundle.certificates).toHaveLength(1);
    expect(() => readTrustBundle(join(dir, 'missing.crt'))).toThrow(/missing\.crt: cannot read it as PEM certificates \(ENOENT\)$/);
  });
});
