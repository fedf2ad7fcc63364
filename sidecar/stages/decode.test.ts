import { describe, expect, it } from 'vitest';
import { AuthorityServices, isLoopbackAuthority, originForm, serviceFromAuthority, singleHost } from './decode.js';

describe('serviceFromAuthority', () => {
  it('reads the service from the host spellings apps use, with or without a port', () => {
    const hosts = [
      'catalog', 'catalog:80', 'CATALOG',
      // Consul DNS
      'catalog.service.consul', 'catalog.service.dc-1.consul:8080',
      // Kubernetes: <svc>.svc, <svc>.<ns>.svc, any cluster domain
      'catalog.svc', 'catalog.default.svc', 'catalog.ns.svc.cluster.local', 'catalog.default.svc.mycluster.local',
      // Fully qualified, with the root's trailing dot
      'catalog.', 'catalog.:8080', 'catalog.service.consul.', 'catalog.ns.svc.cluster.local.', 'catalog.default.svc.',
    ];
    for (const host of hosts) expect(serviceFromAuthority(host), host).toBe('catalog');
  });

  it('names no service for hosts that are not such a spelling', () => {
    for (const host of ['catalog..', '.catalog', '.', '', '127.0.0.1', '127.0.0.1:8080', '[::1]:80', 'v2.catalog.service.consul', 'catalog.service.consul.service.consul', 'catalog.a.b',
      // Kubernetes' short <svc>.<ns> reads as any outside name would
      'catalog.default', 'catalog.default:80', 'stripe.com', 'example.com.']) {
      expect(serviceFromAuthority(host), host).toBe('');
    }
  });
});

describe('AuthorityServices', () => {
  it('answers as serviceFromAuthority, again from its memo, and past its memo limit', () => {
    const services = new AuthorityServices();
    const hosts = ['catalog:80', 'stripe.com', 'catalog.ns.svc.cluster.local', ...Array.from({ length: 1100 }, (_, i) => `s${i}.svc`)];
    for (let round = 0; round < 2; round++) for (const host of hosts) expect(services.serviceOf(host), host).toBe(serviceFromAuthority(host));
    expect(services.serviceOf('s1099.svc')).toBe('s1099');
  });
});

describe('isLoopbackAuthority', () => {
  it('is true for the loopback addresses a client pointed at an --upstream port sends, with or without a port', () => {
    for (const a of ['127.0.0.1', '127.0.0.1:7001', '127.1.2.3:80', '[::1]', '[::1]:7001', 'localhost', 'LocalHost:7001', 'LOCALHOST.', 'localhost.:7001']) expect(isLoopbackAuthority(a), a).toBe(true);
    for (const a of ['', 'catalog', 'catalog:7001', 'localhost.example', 'lb', '10.0.0.1:80', '127.0.0', '[::2]:80', '1catalog']) expect(isLoopbackAuthority(a), a).toBe(false);
  });
});

describe('singleHost', () => {
  it('sends the same authority once (any case), keeping the other fields in order', () => {
    const headers = ['host', 'catalog', 'te', 'trailers', 'host', 'Catalog', 'x-a', '1'];
    expect(singleHost(headers)).toBeUndefined();
    expect(headers).toEqual(['host', 'catalog', 'te', 'trailers', 'x-a', '1']);
  });

  it('names differing authorities and leaves a single Host alone', () => {
    expect(singleHost(['host', 'catalog', 'host', 'elsewhere'])).toBe('the request names two authorities, "catalog" and "elsewhere" (:authority and Host)');
    const one = ['host', 'catalog', 'x-a', '1'];
    expect(singleHost(one)).toBeUndefined();
    expect(one).toEqual(['host', 'catalog', 'x-a', '1']);
    expect(singleHost(['x-a', '1'])).toBeUndefined();
  });
});

describe('originForm', () => {
  it('takes an absolute-form target to origin form; OPTIONS without a path or query to * (RFC 9112 §3.2.4)', () => {
    expect(originForm('http://catalog/items?x=1', 'catalog', 'GET')).toBe('/items?x=1');
    expect(originForm('http://catalog', 'catalog', 'GET')).toBe('/');
    expect(originForm('http://catalog?x=1', 'catalog', 'GET')).toBe('/?x=1');
    expect(originForm('http://catalog:8080', 'catalog:8080', 'OPTIONS')).toBe('*');
    expect(originForm('http://catalog/', 'catalog', 'OPTIONS')).toBe('/');
    expect(originForm('http://catalog?x=1', 'catalog', 'OPTIONS')).toBe('/?x=1');
  });
});
