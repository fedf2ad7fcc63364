/**
 * Bootstrap tokens (SPEC §5): a token names one service identity for a limited time. Only
 * its sha256 is stored, under `tokens/<hash>`, so a copy of the store does not leak usable
 * tokens. The CA's Sign RPC and the push stream call `verify` to learn which service a
 * caller may act as. Stored entries are checked like the mesh config: all of them at start
 * (`load`, which refuses the start naming each bad key), and each one again when it is read.
 */
import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { serviceName } from '../common/config/schema.js';
import type { Logger } from '../common/log.js';
import type { ConfigStore, StoreEntry } from './store/store.js';
import { entryProblems, StoredConfigError } from './store/stored-entries.js';

export interface IssuedToken {
  readonly token: string;
  readonly service: string;
  readonly expiresAt: string;
}

/** What the store holds under `tokens/<sha256 of the token>`. */
export const storedToken = z
  .object({
    service: serviceName,
    createdAt: z.string().datetime(),
    expiresAt: z.string().datetime(),
    revoked: z.boolean(),
  })
  .strict();

type StoredToken = z.infer<typeof storedToken>;

export type TokenProblem = 'malformed' | 'unknown' | 'expired' | 'revoked' | 'invalid-entry';

export class TokenError extends Error {
  override name = 'TokenError';
  constructor(readonly problem: TokenProblem) {
    super(problem === 'invalid-entry' ? "bootstrap token's stored entry is invalid (the control plane's log names it)" : `bootstrap token is ${problem}`);
  }
}

const PREFIX = 'skt_';
const KEY_PREFIX = 'tokens/';
const HASH = /^[0-9a-f]{64}$/;

function hashOf(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

function problemsOf(entry: StoreEntry): string[] {
  return entryProblems(entry, storedToken, HASH.test(entry.key.slice(KEY_PREFIX.length)) ? [] : ['not a token hash: expected 64 lowercase hex digits']);
}

export interface BootstrapTokensOptions {
  readonly now?: () => number;
  /** Where an entry found invalid at run time (Consul KV edited by hand) is reported. */
  readonly logger?: Logger;
}

export class BootstrapTokens {
  private readonly now: () => number;

  constructor(
    private readonly store: ConfigStore,
    private readonly options: BootstrapTokensOptions = {},
  ) {
    this.now = options.now ?? Date.now;
  }

  /**
   * Checks every stored token; throws StoredConfigError naming each invalid entry (a
   * hand-edited store.json or KV pair), so the control plane refuses to start on them
   * rather than answer for tokens it cannot read. Nothing is changed in the store.
   */
  async load(): Promise<void> {
    const problems = (await this.store.list(KEY_PREFIX)).flatMap(problemsOf);
    if (problems.length > 0) throw new StoredConfigError(this.store.location, problems, 'refusing to start');
  }

  async create(service: string, ttlMs: number): Promise<IssuedToken> {
    const token = PREFIX + randomBytes(32).toString('base64url');
    const createdAt = this.now();
    const stored: StoredToken = {
      service,
      createdAt: new Date(createdAt).toISOString(),
      expiresAt: new Date(createdAt + ttlMs).toISOString(),
      revoked: false,
    };
    await this.store.put(KEY_PREFIX + hashOf(token), stored, { ifRevision: 0 });
    return { token, service, expiresAt: stored.expiresAt };
  }

  /** The service the token was issued for; throws TokenError when it cannot be used. */
  async verify(token: string): Promise<string> {
    if (!token.startsWith(PREFIX)) throw new TokenError('malformed');
    const entry = await this.store.get(KEY_PREFIX + hashOf(token));
    if (!entry) throw new TokenError('unknown');
    const stored = this.read(entry);
    if (stored.revoked) throw new TokenError('revoked');
    if (Date.parse(stored.expiresAt) <= this.now()) throw new TokenError('expired');
    return stored.service;
  }

  /** Idempotent: revoking a revoked token changes nothing and says 'already-revoked'. */
  async revoke(token: string): Promise<'revoked' | 'already-revoked' | 'unknown'> {
    const key = KEY_PREFIX + hashOf(token);
    const entry = await this.store.get(key);
    if (!entry) return 'unknown';
    // Asked by an operator, who is told the key and the store.
    const stored = storedToken.safeParse(entry.value);
    if (!stored.success) throw new StoredConfigError(this.store.location, problemsOf(entry), 'not revoked');
    if (stored.data.revoked) return 'already-revoked';
    await this.store.put(key, { ...stored.data, revoked: true }, { ifRevision: entry.revision });
    return 'revoked';
  }

  /** An entry read at run time for a sidecar: one changed by hand since the start refuses the token (TokenError) and is logged with its key. */
  private read(entry: StoreEntry): StoredToken {
    const result = storedToken.safeParse(entry.value);
    if (result.success) return result.data;
    const err = new StoredConfigError(this.store.location, problemsOf(entry), 'token refused');
    this.options.logger?.error({ key: entry.key }, err.message);
    throw new TokenError('invalid-entry');
  }
}
