/**
 * One control plane per data dir: a second one would commit its own view of `store.json`
 * over the first one's, silently losing acknowledged writes, and share the CA's files.
 *
 * The lock is an exclusive SQLite lock (a POSIX record lock underneath) on `lock` in the data
 * dir, held for the life of the process. The kernel drops it when the process dies, however
 * it dies, so a crashed owner never blocks the next start and a reused pid cannot fake an
 * owner, which a pid file alone could not promise. `control-plane.pid` beside it only names
 * the holder in the refusal message.
 */
import Database from 'better-sqlite3';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export class DataDirInUseError extends Error {
  override name = 'DataDirInUseError';
  constructor(
    readonly dataDir: string,
    readonly holderPid: number | undefined,
  ) {
    super(
      `the data dir ${dataDir} is in use by another control plane (pid ${holderPid ?? 'unknown'}); ` +
        'stop it, or give this one its own --data-dir (replicas share state through --store consul)',
    );
  }
}

export interface DataDirLock {
  release(): void;
}

export function lockDataDir(dataDir: string): DataDirLock {
  // timeout 0: a held lock is an answer now, not something to wait for.
  const db = new Database(join(dataDir, 'lock'), { timeout: 0 });
  const pidFile = join(dataDir, 'control-plane.pid');
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE');
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY') throw new DataDirInUseError(dataDir, readPid(pidFile));
    throw err;
  }
  writeFileSync(pidFile, `${process.pid}\n`);
  return { release: () => db.close() };
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8'), 10);
    return Number.isInteger(pid) ? pid : undefined;
  } catch {
    // The holder may not have written it yet.
    return undefined;
  }
}
