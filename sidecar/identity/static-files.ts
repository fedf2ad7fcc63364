/**
 * Static identity (`--cert-file`, `--key-file`, `--ca-file`): PEM files managed outside
 * Skein (cert-manager, Vault, a script). The files are re-read when they change, so an
 * external rotation reaches new connections without a restart; a half-written or
 * mismatched set is ignored until it becomes consistent.
 *
 * The files get the checks an issued certificate gets (SPEC §8): valid now, issued by a
 * certificate of the CA bundle (through the cert file's own intermediates, if any), naming
 * this sidecar's service in its SPIFFE ID, and usable as TLS server and client (key usage). Peers would refuse anything else at the
 * handshake, so a sidecar that started with it would look ready and fail every call.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import forge from 'node-forge';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { readTrustBundle, splitPemCertificates, TrustBundleError } from '../../common/identity/bundle.js';
import { parseServiceSpiffeId, spiffeIdOf } from '../../common/identity/spiffe.js';
import type { Logger } from '../../common/log.js';
import type { IdentityProvider, TlsIdentity } from './provider.js';

export interface StaticFilesOptions {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
  /** The sidecar's `--service`: the certificate must name it. */
  readonly service: string;
  /** `--trust-domain-alias`: trust domains peers' identities may be in besides the certificate's own. */
  readonly peerTrustDomains?: readonly string[];
  readonly logger: Logger;
  /** How often the files are checked for changes. */
  readonly pollMs?: number;
}

/** Reads and checks one consistent identity for `service` from PEM files; throws with the file at fault. */
export function readIdentityFiles(certFile: string, keyFile: string, caFile: string, service: string, now = Date.now()): TlsIdentity {
  const certPem = readPem('--cert-file', certFile);
  const keyPem = readPem('--key-file', keyFile);
  let bundle: ReturnType<typeof readTrustBundle>;
  try {
    bundle = readTrustBundle(caFile);
  } catch (err) {
    if (err instanceof TrustBundleError) throw new Error(`--ca-file ${err.message}`);
    throw err;
  }
  const { pem: caPem, certificates: roots } = bundle;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new Error(`${certFile}: not a PEM certificate (${(err as Error).message})`);
  }
  if (!cert.checkPrivateKey(createPrivateKey(keyPem))) throw new Error(`${keyFile} is not the private key of ${certFile}`);
  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  if (now >= notAfter) throw new Error(`${certFile}: the certificate expired at ${new Date(notAfter).toISOString()}`);
  if (now < notBefore) throw new Error(`${certFile}: the certificate is not valid before ${new Date(notBefore).toISOString()}`);
  const intermediates = splitPemCertificates(certPem).slice(1).map((pem) => new X509Certificate(pem));
  if (!chainsTo(cert, intermediates, roots)) throw new Error(`${certFile}: the certificate was not issued by a CA of ${caFile}`);
  // Through CAs valid now only, as peers verify the chain (a root past its date verifies nothing).
  const current = (c: X509Certificate): boolean => Date.parse(c.validFrom) <= now && now < Date.parse(c.validTo);
  const outOfDate = [...intermediates, ...roots].find((c) => !current(c));
  if (outOfDate !== undefined && !chainsTo(cert, intermediates.filter(current), roots.filter(current))) {
    throw new Error(`${certFile}: the certificate is issued through ${outOfDate.subject.replace(/\n/g, ', ')}, which is valid from ${new Date(Date.parse(outOfDate.validFrom)).toISOString()} to ${new Date(Date.parse(outOfDate.validTo)).toISOString()} only, so peers would refuse it`);
  }
  const spiffeId = spiffeIdOf(cert);
  const named = spiffeId === undefined ? undefined : parseServiceSpiffeId(spiffeId);
  if (named === undefined) throw new Error(`${certFile}: the certificate has no SPIFFE ID of the form spiffe://TRUST-DOMAIN/service/NAME (found ${spiffeId ?? 'no URI SAN'})`);
  if (named.service !== service) throw new Error(`${certFile}: the certificate is for service ${named.service} (${spiffeId}), not ${service}`);
  if (cert.ca) throw new Error(`${certFile}: the certificate is a CA certificate (basicConstraints CA:TRUE), not a workload leaf, so peers would refuse it`);
  const usage = usageProblem(cert);
  if (usage !== undefined) throw new Error(`${certFile}: the certificate's ${usage}, so peers would refuse it (unsuitable certificate purpose)`);
  return { certPem, keyPem, caPem, spiffeId, notAfter: new Date(notAfter) };
}

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/**
 * Why a leaf cannot serve both ends of mTLS, as OpenSSL's purpose check on peers would find:
 * an extended key usage without serverAuth or clientAuth, or a key usage without
 * digitalSignature (every TLS 1.3 handshake signs with the leaf's key). Undefined when fine.
 */
function usageProblem(cert: X509Certificate): string | undefined {
  // Node 20's `keyUsage` lists the extended key usage OIDs; later releases call it `extKeyUsage`.
  const eku = (cert as X509Certificate & { extKeyUsage?: string[] }).extKeyUsage ?? cert.keyUsage;
  if (eku !== undefined) {
    const missing = [
      [SERVER_AUTH, 'serverAuth'],
      [CLIENT_AUTH, 'clientAuth'],
    ].filter(([oid]) => !eku.includes(oid!));
    if (missing.length > 0) return `extended key usage lacks ${missing.map(([, name]) => name).join(' and ')} (a sidecar is both TLS server and client)`;
  }
  const ku = keyUsageOf(cert);
  if (ku !== undefined && !ku.digitalSignature) return 'key usage lacks digitalSignature, which a TLS handshake needs';
  return undefined;
}

/** The key usage extension's bits (node-forge decodes them; Node has no API for it), or undefined without one. */
function keyUsageOf(cert: X509Certificate): { digitalSignature?: boolean } | undefined {
  const { asn1, pki, util } = forge;
  const tbs = asn1.fromDer(util.createBuffer(cert.raw.toString('binary'))).value[0] as forge.asn1.Asn1;
  const container = (tbs.value as forge.asn1.Asn1[]).find((v) => v.tagClass === asn1.Class.CONTEXT_SPECIFIC && v.type === 3);
  const extensions = ((container?.value as forge.asn1.Asn1[] | undefined)?.[0]?.value ?? []) as forge.asn1.Asn1[];
  for (const ext of extensions) {
    const parsed = (pki as unknown as { certificateExtensionFromAsn1(e: forge.asn1.Asn1): { name?: string; digitalSignature?: boolean } }).certificateExtensionFromAsn1(ext);
    if (parsed.name === 'keyUsage') return parsed;
  }
  return undefined;
}

/** A PEM file's text; an unreadable file is an error naming its flag, as a bad --ca-file's is. */
function readPem(flag: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`${flag} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** `cert` was signed by a root, directly or through the given intermediates (at most a few levels). */
function chainsTo(cert: X509Certificate, intermediates: readonly X509Certificate[], roots: readonly X509Certificate[], depth = 0): boolean {
  const signedBy = (issuer: X509Certificate): boolean => cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  if (roots.some(signedBy)) return true;
  return depth < 4 && intermediates.some((i) => i !== cert && signedBy(i) && chainsTo(i, intermediates, roots, depth + 1));
}

export class StaticFilesIdentityProvider implements IdentityProvider {
  private identity: TlsIdentity;
  private readonly listeners: ((identity: TlsIdentity) => void)[] = [];
  private readonly files: string[];
  private readonly reload = (): void => this.tryReload();

  /** Throws when the files cannot be used at start: a static sidecar without identity is a config error. */
  constructor(private readonly options: StaticFilesOptions) {
    this.identity = this.read();
    this.files = [options.certFile, options.keyFile, options.caFile];
    for (const f of this.files) watchFile(f, { interval: options.pollMs ?? 2_000, persistent: false }, this.reload);
  }

  current(): TlsIdentity {
    return this.identity;
  }

  onChange(listener: (identity: TlsIdentity) => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    for (const f of this.files) unwatchFile(f, this.reload);
  }

  private read(): TlsIdentity {
    const { certFile, keyFile, caFile, service, peerTrustDomains } = this.options;
    return { ...readIdentityFiles(certFile, keyFile, caFile, service), peerTrustDomains };
  }

  private tryReload(): void {
    let next: TlsIdentity;
    try {
      next = this.read();
    } catch (err) {
      this.options.logger.warn({ err: (err as Error).message }, 'identity files changed but are not usable yet; keeping the current identity');
      return;
    }
    if (next.certPem === this.identity.certPem && next.keyPem === this.identity.keyPem && next.caPem === this.identity.caPem) return;
    this.identity = next;
    for (const listener of this.listeners) listener(next);
  }
}
