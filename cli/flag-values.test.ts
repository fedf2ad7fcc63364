import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { canaryBody } from '../control-plane/canary/schema.js';
import { checkFlagValues, parseAdminUrl, parseAdvertiseAddress, parseHostPort, parseImageReference, parseKubernetesName, parseMethod, parseRequestPath, parseTrustDomainAliases } from './flag-values.js';
import { UsageError } from './usage-error.js';

describe('HOST:PORT flags', () => {
  it('take a name, an IPv4 or a bracketed IPv6 address with a port from 1 to 65535', () => {
    for (const ok of ['127.0.0.1:15012', 'control-plane:15012', 'skein_cp:1', '[::1]:65535']) {
      expect(parseHostPort(ok), ok).toBe(ok);
      expect(parseAdminUrl(ok), ok).toBe(`http://${ok}`);
    }
  });

  it('refuse a missing, zero or too large port, and a path', () => {
    for (const bad of ['127.0.0.1', 'cp:0', 'cp:65536', 'cp:15012/x', ':15012', '::1:15012']) {
      expect(() => parseHostPort(bad), bad).toThrow(InvalidArgumentError);
      expect(() => parseAdminUrl(bad), bad).toThrow(InvalidArgumentError);
    }
  });

  it('admin URLs may also be http(s) URLs, without a trailing slash', () => {
    expect(parseAdminUrl('https://cp.example:8443/')).toBe('https://cp.example:8443');
    expect(() => parseAdminUrl('ftp://cp:21')).toThrow(InvalidArgumentError);
    expect(parseAdminUrl('https://proxy.example/skein/')).toBe('https://proxy.example/skein');
  });

  it('admin URLs have no query or fragment, which would end up before the API paths', () => {
    for (const bad of ['http://cp:15080?x=1', 'http://cp:15080/?', 'http://cp:15080#top', 'cp:15080?x=1']) {
      expect(() => parseAdminUrl(bad), bad).toThrow(bad.startsWith('http') ? /has no query or fragment/ : InvalidArgumentError);
    }
  });
});

describe('request methods and paths (skein tap filters, skein explain)', () => {
  it('take any token as a method, as sent, and a path or prefix starting with "/"', () => {
    for (const ok of ['GET', 'get', 'M-SEARCH', 'PROPFIND']) expect(parseMethod(ok), ok).toBe(ok);
    for (const ok of ['/', '/products', '/products/1?x=1']) expect(parseRequestPath(ok), ok).toBe(ok);
  });

  it('refuse what no request has: a method that is not a token, a path without its leading "/"', () => {
    for (const bad of ['G T', 'GET\r\n', '', 'GÉT']) expect(() => parseMethod(bad), JSON.stringify(bad)).toThrow(/^must be an HTTP method name \(a token/);
    for (const bad of ['noslash', '', '*']) expect(() => parseRequestPath(bad), JSON.stringify(bad)).toThrow('must start with "/"');
  });
});

describe('--advertise-address', () => {
  it('takes an IPv4 or IPv6 address or a host name', () => {
    for (const ok of ['10.1.2.3', 'fd00::7', 'orders-1.prod.svc.cluster.local', 'localhost']) expect(parseAdvertiseAddress(ok), ok).toBe(ok);
  });

  it('refuses a URL, a port, brackets, spaces and the unspecified address, saying why', () => {
    expect(() => parseAdvertiseAddress('http://10.1.2.3')).toThrow(/no scheme, brackets or port/);
    expect(() => parseAdvertiseAddress('10.1.2.3:8080')).toThrow(/no scheme, brackets or port/);
    expect(() => parseAdvertiseAddress('[fd00::7]')).toThrow(/no scheme, brackets or port/);
    expect(() => parseAdvertiseAddress('my host')).toThrow(/must be an IP address or a host name/);
    expect(() => parseAdvertiseAddress('')).toThrow(InvalidArgumentError);
    for (const unspecified of ['0.0.0.0', '::', '0:0:0:0:0:0:0:0']) expect(() => parseAdvertiseAddress(unspecified), unspecified).toThrow(/unspecified address/);
  });
});

describe('checkFlagValues', () => {
  const flags = { to: '--to', from: '--from', 'thresholds.minRequests': '--min-requests' };
  const usage = (body: unknown) => {
    try {
      checkFlagValues(canaryBody, body, flags);
    } catch (err) {
      if (err instanceof UsageError) return err.message;
      throw err;
    }
    return undefined;
  };

  it('names the flag of each bad value, and a field the message names by its flag too', () => {
    expect(usage({ to: 'v2', from: 'v2' })).toBe('--to: must differ from --from');
    expect(usage({ to: 'v2', thresholds: { minRequests: 0 } })).toMatch(/^--min-requests: must be at least 1/);
    expect(usage({ to: 'v2' })).toBeUndefined();
  });
});

describe('--image', () => {
  it('takes a reference with or without a registry, port, tag and digest', () => {
    const digest = `sha256:${'0123456789abcdef'.repeat(4)}`;
    for (const ok of ['skein', 'skein:0.1.0', 'registry.example.com/skein:1.2.3', 'localhost:5000/org/skein_sidecar:v1-rc.2', `ghcr.io/org/skein@${digest}`, `skein:0.1.0@${digest}`]) {
      expect(parseImageReference(ok), ok).toBe(ok);
    }
  });

  it('refuses nothing, spaces, an upper-case repository and an empty tag', () => {
    for (const bad of ['', ' skein:0.1.0', 'Bad Image', 'registry.example.com/Skein:1', 'skein:', 'skein@sha256:12']) {
      expect(() => parseImageReference(bad), bad).toThrow(/not an image reference/);
    }
  });
});

describe('Kubernetes object names (--ca-config-map)', () => {
  it('take an RFC 1123 subdomain of up to 253 characters', () => {
    for (const ok of ['skein-ca', 'skein.ca.v2', '0ca', `${'a'.repeat(63)}.${'b'.repeat(189)}`]) expect(parseKubernetesName(ok), ok).toBe(ok);
  });

  it('refuse upper case, "_", a leading or trailing "-" or ".", nothing, and 254 characters', () => {
    for (const bad of ['Bad_Name!', 'Skein-ca', 'skein_ca', '-ca', 'ca-', '.ca', 'ca.', '', 'a'.repeat(254)]) {
      expect(() => parseKubernetesName(bad), bad).toThrow(/not a Kubernetes object name/);
    }
  });
});

describe('--trust-domain-alias', () => {
  it('adds each value, a comma-separated list too (SKEIN_TRUST_DOMAIN_ALIAS), and refuses what is no trust domain', () => {
    expect(parseTrustDomainAliases('old.example')).toEqual(['old.example']);
    expect(parseTrustDomainAliases('b.example, c.example', ['a.example'])).toEqual(['a.example', 'b.example', 'c.example']);
    for (const bad of ['Old.Example', 'a.example,', 'spiffe://a.example']) expect(() => parseTrustDomainAliases(bad), bad).toThrow(InvalidArgumentError);
  });
});
