/**
 * Each demo service owns one SQLite file in its data dir, never shared with another service
 * (the instances of one service share it, so writes take the lock up front: `.immediate`).
 * Migrations run in order on open, tracked by `PRAGMA user_version`, so the first start
 * creates the schema (and seed data) and later starts keep what is there, bringing a
 * database an older demo made up to date.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export type Db = Database.Database;
export type Migration = (db: Db) => void;

/** A migration left rows pointing at rows that no longer exist; it was rolled back. */
export class MigrationError extends Error {
  constructor(
    readonly file: string,
    readonly version: number,
    readonly reason: string,
  ) {
    super(`${file}: migration to version ${version} rolled back: ${reason}`);
    this.name = 'MigrationError';
  }
}

export function openDatabase(dataDir: string, file: string, migrations: readonly Migration[]): Db {
  mkdirSync(dataDir, { recursive: true });
  const db = new Database(join(dataDir, file));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  // Foreign keys are enforced only once the schema is current: changing a constraint in SQLite
  // means rebuilding the table (create, copy, drop, rename), and with enforcement on, the drop
  // fails for every row that references the old table. Each migration is checked instead.
  db.pragma('foreign_keys = OFF');
  try {
    const current = db.pragma('user_version', { simple: true }) as number;
    for (let v = current; v < migrations.length; v++) {
      db.transaction(() => {
        migrations[v]!(db);
        const dangling = db.pragma('foreign_key_check') as { table: string; parent: string }[];
        if (dangling.length > 0) throw new MigrationError(file, v + 1, `${dangling.length} row(s) of ${dangling[0]!.table} reference a missing ${dangling[0]!.parent} row`);
        db.pragma(`user_version = ${v + 1}`);
      })();
    }
  } catch (err) {
    db.close();
    throw err;
  }
  db.pragma('foreign_keys = ON');
  return db;
}
