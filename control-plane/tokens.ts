/**
 * Bootstrap tokens (SPEC §5): a token names one service identity for a limited time. Only
 * its sha256 is stored, under `tokens/<hash>`, so a copy of the store does not leak usable
 * tokens. The CA's Sign RPC and the push stream call `verify` to learn which service a
 * caller may act as.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { ConfigStore } from './store/store.js';

export interface IssuedToken {
  readonly token: string;
  readonly service: string;
  readonly expiresAt: string;
}

interface StoredToken {
  service: string;
  createdAt: string;
  expiresAt: string;
  revoked: boolean;
}

export type TokenProblem = 'malformed' | 'unknown' | 'expired' | 'revoked';

export class TokenError extends Error {
  override name = 'TokenError';
  constructor(readonly problem: TokenProblem) {
    super(`bootstrap token is ${problem}`);
  }
}

const PREFIX = 'skt_';

function hashOf(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export class BootstrapTokens {
  constructor(
    private readonly store: ConfigStore,
    private readonly now: () => number = Date.now,
  ) {}

  async create(service: string, ttlMs: number): Promise<IssuedToken> {
    const token = PREFIX + randomBytes(32).toString('base64url');
    const createdAt = this.now();
    const stored: StoredToken = {
      service,
      createdAt: new Date(createdAt).toISOString(),
      expiresAt: new Date(createdAt + ttlMs).toISOString(),
      revoked: false,
    };
    await this.store.put(`tokens/${hashOf(token)}`, stored, { ifRevision: 0 });
    return { token, service, expiresAt: stored.expiresAt };
  }

  /** The service the token was issued for; throws TokenError when it cannot be used. */
  async verify(token: string): Promise<string> {
    if (!token.startsWith(PREFIX)) throw new TokenError('malformed');
    const entry = await this.store.get(`tokens/${hashOf(token)}`);
    if (!entry) throw new TokenError('unknown');
    const stored = entry.value as StoredToken;
    if (stored.revoked) throw new TokenError('revoked');
    if (Date.parse(stored.expiresAt) <= this.now()) throw new TokenError('expired');
    return stored.service;
  }

  /** Idempotent: revoking a revoked token changes nothing and says 'already-revoked'. */
  async revoke(token: string): Promise<'revoked' | 'already-revoked' | 'unknown'> {
    const key = `tokens/${hashOf(token)}`;
    const entry = await this.store.get(key);
    if (!entry) return 'unknown';
    const stored = entry.value as StoredToken;
    if (stored.revoked) return 'already-revoked';
    await this.store.put(key, { ...stored, revoked: true }, { ifRevision: entry.revision });
    return 'revoked';
  }
}
