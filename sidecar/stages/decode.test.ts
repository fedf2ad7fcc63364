import { describe, expect, it } from 'vitest';
import { serviceFromAuthority } from './decode.js';

describe('serviceFromAuthority', () => {
  it('reads the service from the host spellings apps use, with or without a port', () => {
    const hosts = [
      'catalog', 'catalog:80', 'CATALOG',
      // Consul DNS
      'catalog.service.consul', 'catalog.service.dc-1.consul:8080',
      // Kubernetes: <svc>.<ns>, <svc>.<ns>.svc, any cluster domain
      'catalog.default', 'catalog.default:80', 'catalog.svc', 'catalog.default.svc', 'catalog.ns.svc.cluster.local', 'catalog.default.svc.mycluster.local',
      // Fully qualified, with the root's trailing dot
      'catalog.', 'catalog.:8080', 'catalog.service.consul.', 'catalog.ns.svc.cluster.local.', 'catalog.default.',
    ];
    for (const host of hosts) expect(serviceFromAuthority(host), host).toBe('catalog');
  });

  it('names no service for hosts that are not such a spelling', () => {
    for (const host of ['catalog..', '.catalog', '.', '', '127.0.0.1', '127.0.0.1:8080', '[::1]:80', 'v2.catalog.service.consul', 'catalog.service.consul.service.consul', 'catalog.a.b']) {
      expect(serviceFromAuthority(host), host).toBe('');
    }
  });
});
