/**
 * SPIFFE service identities (SPEC §5): `spiffe://<trust-domain>/service/<name>`, carried as
 * the URI SAN of every leaf. Identity is read from certificates only, never from headers.
 */
const SERVICE_ID = /^spiffe:\/\/([a-z0-9._-]{1,255})\/service\/([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)$/;
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;

/** The SPIFFE spec's rule for a trust domain name, as error messages state it. */
export const TRUST_DOMAIN_RULE = 'lowercase letters, digits, dots, dashes and underscores (at most 255), e.g. skein.local';

export function isTrustDomain(name: string): boolean {
  return TRUST_DOMAIN.test(name);
}

export interface ServiceIdentity {
  readonly trustDomain: string;
  readonly service: string;
}

export function serviceSpiffeId(trustDomain: string, service: string): string {
  return `spiffe://${trustDomain}/service/${service}`;
}

/** The trust domain and service of a service SPIFFE ID; undefined for anything else. */
export function parseServiceSpiffeId(id: string): ServiceIdentity | undefined {
  const m = SERVICE_ID.exec(id);
  return m ? { trustDomain: m[1]!, service: m[2]! } : undefined;
}

/**
 * The URI SANs of a certificate, from Node's `subjectaltname` text
 * (`DNS:a, URI:spiffe://td/service/x, IP Address:127.0.0.1`), as found on both
 * `tls.PeerCertificate` and `crypto.X509Certificate`.
 */
export function uriSans(subjectAltName: string | undefined): string[] {
  if (!subjectAltName) return [];
  // Node quotes entries containing ", " or other specials as JSON strings: URI:"a, b".
  const out: string[] = [];
  const entry = /(?:^|, )URI:("(?:[^"\\]|\\.)*"|[^,]*)/g;
  for (const m of subjectAltName.matchAll(entry)) {
    const raw = m[1]!;
    out.push(raw.startsWith('"') ? (JSON.parse(raw) as string) : raw);
  }
  return out;
}

/** The one SPIFFE ID of a certificate; undefined when it has none or more than one. */
export function spiffeIdOf(cert: { subjectaltname?: string; subjectAltName?: string } | undefined): string | undefined {
  if (!cert) return undefined;
  const ids = uriSans(cert.subjectaltname ?? cert.subjectAltName).filter((u) => u.startsWith('spiffe://'));
  return ids.length === 1 ? ids[0] : undefined;
}
