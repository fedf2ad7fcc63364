/**
 * Each demo service owns one SQLite file in its data dir, never shared with another service
 * (the instances of one service share it, so writes take the lock up front: `.immediate`).
 * Migrations run in order on open, tracked by `PRAGMA user_version`, so the first start
 * creates the schema (and seed data) and later starts keep what is there.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export type Db = Database.Database;
export type Migration = (db: Db) => void;

export function openDatabase(dataDir: string, file: string, migrations: readonly Migration[]): Db {
  mkdirSync(dataDir, { recursive: true });
  const db = new Database(join(dataDir, file));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  const current = db.pragma('user_version', { simple: true }) as number;
  for (let v = current; v < migrations.length; v++) {
    db.transaction(() => {
      migrations[v]!(db);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
  return db;
}
