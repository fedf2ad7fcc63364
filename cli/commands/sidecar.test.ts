import { describe, expect, it } from 'vitest';
import { UsageError } from '../usage-error.js';
import { advertiseAddressOf } from './sidecar.js';

describe('advertiseAddressOf', () => {
  const fallback = () => '192.0.2.2';

  it('without --advertise-address, advertises the inbound host when it is one address, else the first non-loopback IPv4', () => {
    expect(advertiseAddressOf('127.0.0.1', undefined, fallback)).toBe('127.0.0.1');
    expect(advertiseAddressOf('::1', undefined, fallback)).toBe('::1');
    expect(advertiseAddressOf('10.0.0.5', undefined, fallback)).toBe('10.0.0.5');
    expect(advertiseAddressOf('0.0.0.0', undefined, fallback)).toBe('192.0.2.2');
    expect(advertiseAddressOf('::', undefined, fallback)).toBe('192.0.2.2');
  });

  it('keeps a given address, but refuses a non-loopback IP while the inbound listener is on loopback only', () => {
    expect(advertiseAddressOf('0.0.0.0', '10.0.0.7', fallback)).toBe('10.0.0.7');
    // NAT: bound to a private address, advertised at a public one, as Consul's -bind/-advertise allow.
    expect(advertiseAddressOf('10.0.0.5', '203.0.113.9', fallback)).toBe('203.0.113.9');
    expect(advertiseAddressOf('127.0.0.1', '127.0.0.2', fallback)).toBe('127.0.0.2');
    // A name may resolve to loopback: it is not second-guessed.
    expect(advertiseAddressOf('127.0.0.1', 'localhost', fallback)).toBe('localhost');
    expect(() => advertiseAddressOf('127.0.0.1', '10.0.0.7', fallback)).toThrow(UsageError);
    expect(() => advertiseAddressOf('::1', '10.0.0.7', fallback)).toThrow(/--advertise-address 10\.0\.0\.7 and --inbound-host ::1 disagree/);
  });
});
