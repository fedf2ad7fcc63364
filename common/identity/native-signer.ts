/**
 * RSA signatures for node-forge objects, computed by Node's native crypto. node-forge builds
 * and encodes certificates and CSRs, but its pure-JS RSA private-key operation costs tens of
 * milliseconds (far more on a busy machine), which matters when leaves live seconds and a
 * CA signs for a whole mesh. forge's `sign(key, md)` only calls `key.sign(md)`, so this
 * object stands in for a forge private key: EMSA-PKCS1-v1_5 (RFC 8017 §9.2) over the digest.
 */
import { RSA_PKCS1_PADDING } from 'node:constants';
import { createPrivateKey, privateEncrypt, type KeyObject } from 'node:crypto';
import type forge from 'node-forge';

/** DER prefix of DigestInfo for SHA-256 (RFC 8017 §9.2, note 1). */
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

export interface ForgeSigningKey {
  sign(md: forge.md.MessageDigest): string;
}

export function nativeRsaSigner(privateKeyPem: string | KeyObject): ForgeSigningKey {
  const key = typeof privateKeyPem === 'string' ? createPrivateKey(privateKeyPem) : privateKeyPem;
  return {
    sign(md) {
      if (md.algorithm !== 'sha256') throw new Error(`native signer supports sha256 only, not ${md.algorithm}`);
      const digest = Buffer.from(md.digest().getBytes(), 'binary');
      const signature = privateEncrypt({ key, padding: RSA_PKCS1_PADDING }, Buffer.concat([SHA256_DIGEST_INFO, digest]));
      return signature.toString('binary');
    },
  };
}
