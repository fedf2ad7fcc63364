/**
 * The admin API's bearer token (SPEC §5): `SKEIN_ADMIN_TOKEN` when set, else the
 * `admin-token` file in the data dir, created with mode 0600 on first start. Both are
 * trimmed (a Kubernetes Secret made from a file ends in a newline, which no client sends);
 * a variable that is blank once trimmed counts as unset, like an empty one, and the file
 * is used (the caller warns).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface AdminToken {
  readonly token: string;
  /** True when this start wrote the file (the caller prints the token once). */
  readonly generated: boolean;
  /** True when the file was there but held no token (it was replaced). */
  readonly replacedEmpty?: boolean;
  readonly file?: string;
  /** True when SKEIN_ADMIN_TOKEN was set but blank, so the file was used instead. */
  readonly blankEnv?: boolean;
}

/** Called with the data dir locked (data-dir-lock.ts): no other start writes the file meanwhile. */
export async function resolveAdminToken(dataDir: string, fromEnv: string | undefined): Promise<AdminToken> {
  const env = fromEnv?.trim();
  if (env) return { token: env, generated: false };
  const blankEnv = fromEnv !== undefined && fromEnv !== '' ? { blankEnv: true } : {};
  const file = join(dataDir, 'admin-token');
  let existing: string | undefined;
  try {
    existing = (await readFile(file, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (existing) return { token: existing, generated: false, file, ...blankEnv };
  const token = randomBytes(24).toString('base64url');
  // Written aside and renamed over, so a crash mid-write never leaves an empty or partial file
  // and an empty one (left by an older version, or by hand) is replaced in one step.
  const tmp = `${file}.tmp`;
  await writeFile(tmp, `${token}\n`, { mode: 0o600 });
  await rename(tmp, file);
  return { token, generated: true, replacedEmpty: existing !== undefined, file, ...blankEnv };
}

/** Constant-time comparison of a presented token with the expected one. */
export function tokenMatches(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}
