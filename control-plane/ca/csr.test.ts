import { describe, expect, it } from 'vitest';
import { createCsrPem } from '../../common/identity/csr.js';
import { generateRsaKeyPair } from '../../common/identity/keys.js';
import { readCsr } from './csr.js';

describe('readCsr', () => {
  it('refuses a CSR whose RSA key is shorter than 2048 bits, naming its size', async () => {
    const weak = await generateRsaKeyPair(1024);
    expect(() => readCsr(createCsrPem(weak.privateKeyPem, weak.publicKeyPem, 'orders', 'spiffe://skein.local/service/orders'), ['skein.local'])).toThrow(
      "CSR's RSA key has 1024 bits; at least 2048 are required",
    );
    const strong = await generateRsaKeyPair(2048);
    expect(readCsr(createCsrPem(strong.privateKeyPem, strong.publicKeyPem, 'orders', 'spiffe://skein.local/service/orders'), ['skein.local']).service).toBe('orders');
  });
});
