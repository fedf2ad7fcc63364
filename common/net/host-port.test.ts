import { describe, expect, it } from 'vitest';
import { hostForUrl, hostPort } from './host-port.js';

describe('host and port', () => {
  it('brackets IPv6 addresses only', () => {
    expect(hostPort('::1', 9001)).toBe('[::1]:9001');
    expect(hostPort('127.0.0.1', 9001)).toBe('127.0.0.1:9001');
    expect(hostPort('catalog.service.consul', 80)).toBe('catalog.service.consul:80');
    expect(hostForUrl('fe80::1')).toBe('[fe80::1]');
  });
});
