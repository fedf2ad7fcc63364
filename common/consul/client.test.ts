import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
  it('reads the ACL token from CONSUL_HTTP_TOKEN_FILE first (trimmed; an empty file falls back to CONSUL_HTTP_TOKEN), as Consul\'s CLI does', () => {
    const dir = mkdtempSync(join(tmpdir(), 'skein-token-'));
    const file = join(dir, 'token');
    const tokenOf = (env: NodeJS.ProcessEnv): string | undefined => {
      const connection = connectConsul('http://127.0.0.1:8500', env);
      connection.close();
      return connection.token;
    };
    try {
      writeFileSync(file, '  from-file\n');
      expect(tokenOf({ CONSUL_HTTP_TOKEN_FILE: file })).toBe('from-file');
      expect(tokenOf({ CONSUL_HTTP_TOKEN_FILE: file, CONSUL_HTTP_TOKEN: 'from-env' })).toBe('from-file');
      writeFileSync(file, '\n');
      expect(tokenOf({ CONSUL_HTTP_TOKEN_FILE: file, CONSUL_HTTP_TOKEN: 'from-env' })).toBe('from-env');
      expect(tokenOf({})).toBeUndefined();
      expect(() => tokenOf({ CONSUL_HTTP_TOKEN_FILE: join(dir, 'missing') })).toThrow(/^skein: CONSUL_HTTP_TOKEN_FILE=.*missing: ENOENT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

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
