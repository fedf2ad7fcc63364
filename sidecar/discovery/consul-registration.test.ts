import { describe, expect, it } from 'vitest';
import { isLoopbackUrl } from '../../common/consul/client.js';
import { checkIdOf, registrationBody, type InstanceRegistration } from './consul-registration.js';

const instance: InstanceRegistration = {
  id: 'catalog-v2-1a2b3c4d', service: 'catalog', version: 'v2', protocol: 'grpc', address: '10.0.0.7', port: 15443, checkUrl: 'http://127.0.0.1:15000/ready',
};

describe('registrationBody', () => {
  it('registers the inbound port with version tag and meta, and an HTTP check on /ready every 2 s', () => {
    expect(registrationBody(instance)).toEqual({
      id: 'catalog-v2-1a2b3c4d',
      name: 'catalog',
      address: '10.0.0.7',
      port: 15443,
      tags: ['v2'],
      meta: { version: 'v2', protocol: 'grpc', 'skein-instance': 'catalog-v2-1a2b3c4d' },
      check: { checkid: checkIdOf(instance.id), name: 'skein sidecar /ready of catalog-v2-1a2b3c4d', http: 'http://127.0.0.1:15000/ready', interval: '2s', timeout: '1s', deregistercriticalserviceafter: '1m' },
    });
  });

  it('uses a TTL check when the agent cannot reach the loopback admin port', () => {
    const check = registrationBody({ ...instance, ttlReadiness: () => [] }).check as Record<string, unknown>;
    expect(check.ttl).toBe('6s');
    expect(check.http).toBeUndefined();
  });
});

describe('isLoopbackUrl', () => {
  it('tells a local agent from a remote one', () => {
    expect(isLoopbackUrl('http://127.0.0.1:8500')).toBe(true);
    expect(isLoopbackUrl('http://localhost:8500')).toBe(true);
    expect(isLoopbackUrl('https://[::1]:8501')).toBe(true);
    expect(isLoopbackUrl('http://consul:8500')).toBe(false);
    expect(isLoopbackUrl('http://10.0.0.2:8500')).toBe(false);
  });
});
