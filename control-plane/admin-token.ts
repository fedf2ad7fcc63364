/**
 * The admin API's bearer token (SPEC §5): `SKEIN_ADMIN_TOKEN` when set, else the
 * `admin-token` file in the data dir, created with mode 0600 on first start.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface AdminToken {
  readonly token: string;
  /** True when this start created the file (the caller prints the token once). */
  readonly generated: boolean;
  readonly file?: string;
}

export async function resolveAdminToken(dataDir: string, fromEnv: string | undefined): Promise<AdminToken> {
  if (fromEnv) return { token: fromEnv, generated: false };
  const file = join(dataDir, 'admin-token');
  try {
    const token = (await readFile(file, 'utf8')).trim();
    if (token) return { token, generated: false, file };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const token = randomBytes(24).toString('base64url');
  // 'wx' fails if a concurrent start created it first; then that one's token wins.
  try {
    await writeFile(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return resolveAdminToken(dataDir, undefined);
    throw err;
  }
  return { token, generated: true, file };
}

/** Constant-time comparison of a presented token with the expected one. */
export function tokenMatches(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}
