import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../test/support/index.js';
import { FileStore } from './store/file-store.js';
import { StoredConfigError } from './store/stored-entries.js';
import { BootstrapTokens, TokenError } from './tokens.js';

describe('stored bootstrap tokens', () => {
  it('load refuses entries that bypassed create, naming each key, until they are fixed', async () => {
    const store = await FileStore.open(tempDir());
    const tokens = new BootstrapTokens(store);
    const issued = await tokens.create('orders', 60_000);
    await tokens.load();
    const hash = 'a'.repeat(64);
    await store.put(`tokens/${hash}`, { service: 'orders', createdAt: 'yesterday', expiresAt: '2030-01-01T00:00:00.000Z', revoked: 'no' });
    await store.put('tokens/not-a-hash', { service: 'orders', createdAt: '2026-01-01T00:00:00.000Z', expiresAt: '2030-01-01T00:00:00.000Z', revoked: false });
    const revision = store.currentRevision;

    const refused = await tokens.load().catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(StoredConfigError);
    expect((refused as StoredConfigError).problems).toEqual([
      `tokens/${hash}: createdAt: Invalid datetime`,
      `tokens/${hash}: revoked: Expected boolean, received string`,
      'tokens/not-a-hash: not a token hash: expected 64 lowercase hex digits',
    ]);
    expect((refused as Error).message).toMatch(new RegExp(`^invalid config in the store \\(${store.location}\\), refusing to start: tokens/a{64}: createdAt`));
    expect(store.currentRevision).toBe(revision);
    // Good tokens still work meanwhile.
    expect(await tokens.verify(issued.token)).toBe('orders');

    await store.delete(`tokens/${hash}`);
    await store.delete('tokens/not-a-hash');
    await tokens.load();
  });

  it('refuses a token whose entry was changed by hand after the start, and logs its key', async () => {
    const store = await FileStore.open(tempDir());
    const lines: string[] = [];
    const logger = pino({ level: 'error' }, new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    }));
    const tokens = new BootstrapTokens(store, { logger });
    const issued = await tokens.create('orders', 60_000);
    const [entry] = await store.list('tokens/');
    await store.put(entry!.key, { ...(entry!.value as object), service: 'Not A Service' });

    const err = await tokens.verify(issued.token).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TokenError);
    expect((err as TokenError).problem).toBe('invalid-entry');
    expect(lines.join('')).toContain(`${entry!.key}: service: must be a DNS label`);
    // Revoking is an operator's call: told the key and the store, and nothing is written.
    await expect(tokens.revoke(issued.token)).rejects.toThrow(new RegExp(`^invalid config in the store \\(.*\\), not revoked: ${entry!.key}: service: `));
  });
});
