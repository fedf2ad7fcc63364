import { describe, expect, it } from 'vitest';
import { isTrustDomain, parseServiceSpiffeId, serviceSpiffeId, spiffeIdOf, uriSans } from './spiffe.js';

describe('SPIFFE helpers', () => {
  it('formats and parses service identities', () => {
    expect(serviceSpiffeId('skein.local', 'orders')).toBe('spiffe://skein.local/service/orders');
    expect(parseServiceSpiffeId('spiffe://skein.local/service/orders')).toEqual({ trustDomain: 'skein.local', service: 'orders' });
    expect(parseServiceSpiffeId('spiffe://skein.local/ns/x/sa/orders')).toBeUndefined();
    expect(parseServiceSpiffeId('spiffe://skein.local/service/Orders')).toBeUndefined();
    expect(parseServiceSpiffeId('https://skein.local/service/orders')).toBeUndefined();
  });

  it('accepts exactly the trust domains the SPIFFE spec allows, and parses IDs in each', () => {
    for (const td of ['skein.local', 'prod_eu-1.example', 'a']) {
      expect(isTrustDomain(td)).toBe(true);
      expect(parseServiceSpiffeId(serviceSpiffeId(td, 'users'))).toEqual({ trustDomain: td, service: 'users' });
    }
    for (const td of ['', 'Bad Domain!/x', 'Skein.local', 'skein.local/x', 'a:8080', 'x'.repeat(256)]) expect(isTrustDomain(td)).toBe(false);
  });

  it('reads URI SANs from Node subjectaltname text, quoted entries included', () => {
    expect(uriSans('DNS:localhost, URI:spiffe://td/service/a, IP Address:127.0.0.1')).toEqual(['spiffe://td/service/a']);
    expect(uriSans('URI:"spiffe://td/service/a, b", DNS:x')).toEqual(['spiffe://td/service/a, b']);
    expect(uriSans(undefined)).toEqual([]);
  });

  it('takes a certificate identity only when it has exactly one SPIFFE ID', () => {
    expect(spiffeIdOf({ subjectaltname: 'URI:spiffe://td/service/a, URI:https://x' })).toBe('spiffe://td/service/a');
    expect(spiffeIdOf({ subjectaltname: 'URI:spiffe://td/service/a, URI:spiffe://td/service/b' })).toBeUndefined();
    expect(spiffeIdOf({ subjectaltname: 'DNS:a' })).toBeUndefined();
  });
});
