import { describe, expect, it } from 'vitest';
import { foreignTrustDomainNote, serviceOfClientCertificate } from './client-identity.js';

// As node prints them in a PeerCertificate.
const cert = {
  subjectaltname: 'URI:spiffe://skein.local/service/orders',
  valid_from: 'Dec  7 08:00:00 2026 GMT',
  valid_to: 'Dec  7 09:00:00 2026 GMT',
};
const at = (iso: string) => Date.parse(iso);

describe('serviceOfClientCertificate', () => {
  it('names the service of a certificate valid now', () => {
    expect(serviceOfClientCertificate(cert, ['skein.local'], at('2026-12-07T08:30:00Z'))).toBe('orders');
  });

  it('refuses one expired or not yet valid, as a resumed TLS session would still present it', () => {
    expect(serviceOfClientCertificate(cert, ['skein.local'], at('2026-12-07T09:00:00Z'))).toBeUndefined();
    expect(serviceOfClientCertificate(cert, ['skein.local'], at('2026-12-07T10:00:00Z'))).toBeUndefined();
    expect(serviceOfClientCertificate(cert, ['skein.local'], at('2026-12-07T07:59:59Z'))).toBeUndefined();
  });

  it('names the service of one in an alias trust domain; a refusal explains one of a trust domain not taken', () => {
    const now = at('2026-12-07T08:30:00Z');
    expect(serviceOfClientCertificate(cert, ['new.example', 'skein.local'], now)).toBe('orders');
    expect(foreignTrustDomainNote(cert, ['new.example', 'skein.local'], now)).toBe('');
    expect(foreignTrustDomainNote(cert, ['new.example'], now)).toBe(
      '; its client certificate spiffe://skein.local/service/orders is of trust domain skein.local, which this control plane (trust domain new.example) does not take: start it with --trust-domain-alias skein.local until every sidecar has moved',
    );
    // An expired one proves nothing in any trust domain: no note.
    expect(foreignTrustDomainNote(cert, ['new.example'], at('2026-12-07T10:00:00Z'))).toBe('');
  });

  it('refuses one without dates, of another trust domain, without a service SPIFFE ID, or a CA certificate', () => {
    const now = at('2026-12-07T08:30:00Z');
    expect(serviceOfClientCertificate(undefined, ['skein.local'], now)).toBeUndefined();
    expect(serviceOfClientCertificate({ subjectaltname: cert.subjectaltname }, ['skein.local'], now)).toBeUndefined();
    expect(serviceOfClientCertificate({ ...cert, valid_to: 'garbage' }, ['skein.local'], now)).toBeUndefined();
    expect(serviceOfClientCertificate(cert, ['other.domain'], now)).toBeUndefined();
    expect(serviceOfClientCertificate({ ...cert, ca: true }, ['skein.local'], now)).toBeUndefined();
    expect(serviceOfClientCertificate({ ...cert, subjectaltname: 'URI:spiffe://skein.local/control-plane' }, ['skein.local'], now)).toBeUndefined();
  });
});
