import { describe, expect, it } from 'vitest';
import { startConsul } from '../../test/support/consul.js';
import { connectConsul, consulUrl } from './client.js';

describe('consulUrl', () => {
  it('takes a URL, host:port and [v6]:port, and refuses what is neither', () => {
    expect(consulUrl('http://[::1]:8500', {}).host).toBe('[::1]:8500');
    expect(consulUrl('[::1]:8500', {}).href).toBe('http://[::1]:8500/');
    expect(consulUrl('localhost:8500', {}).href).toBe('http://localhost:8500/');
    expect(consulUrl('consul', { CONSUL_HTTP_SSL: 'true' }).href).toBe('https://consul/');
    // A slash short: without the check it was host "http", port 80.
    expect(() => consulUrl('http:/127.0.0.1:8500', {})).toThrow('"http:/127.0.0.1:8500" is not a URL');
    expect(() => consulUrl('127.0.0.1:99999', {})).toThrow('is not a URL');
    expect(() => consulUrl('ftp://127.0.0.1:8500', {})).toThrow('only http:// and https://');
  });
});

describe('connectConsul', { timeout: 60_000 }, () => {
  it('reaches an agent at an IPv6 address (the brackets kept in the URL, not in the host name connected to)', async () => {
    const consul = await startConsul({ hcl: 'addresses { http = "127.0.0.1 ::1" }' });
    const connection = connectConsul(`http://[::1]:${consul.httpPort}`, {});
    try {
      expect(connection.url).toBe(`http://[::1]:${consul.httpPort}`);
      expect(await connection.client.status.leader()).toMatch(/:/);
    } finally {
      connection.close();
      await consul.stop();
    }
  });
});
