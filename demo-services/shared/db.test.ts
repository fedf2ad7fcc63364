import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MigrationError, openDatabase, type Migration } from './db.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'skein-db-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const createTables: Migration = (db) =>
  db.exec(`CREATE TABLE parent (id TEXT PRIMARY KEY, name TEXT UNIQUE);
    CREATE TABLE child (parent_id TEXT NOT NULL REFERENCES parent(id));
    INSERT INTO parent VALUES ('a', 'x');
    INSERT INTO child VALUES ('a');`);

describe('openDatabase', () => {
  it('lets a migration rebuild a table other tables reference, and enforces foreign keys once open', () => {
    const rebuild: Migration = (db) =>
      db.exec(`CREATE TABLE parent_new (id TEXT PRIMARY KEY, name TEXT);
        INSERT INTO parent_new SELECT * FROM parent;
        DROP TABLE parent;
        ALTER TABLE parent_new RENAME TO parent;`);
    openDatabase(dir, 't.db', [createTables]).close();
    const db = openDatabase(dir, 't.db', [createTables, rebuild]);
    try {
      expect(db.pragma('user_version', { simple: true })).toBe(2);
      db.exec("INSERT INTO parent VALUES ('b', 'x')"); // the UNIQUE on name is gone
      db.exec("INSERT INTO child VALUES ('b')");
      expect(() => db.exec("INSERT INTO child VALUES ('nobody')")).toThrow(/FOREIGN KEY/);
    } finally {
      db.close();
    }
  });

  it('rolls back a migration that leaves rows referencing rows it removed', () => {
    const dropParent: Migration = (db) => db.exec('DROP TABLE parent; CREATE TABLE parent (id TEXT PRIMARY KEY, name TEXT);');
    openDatabase(dir, 't.db', [createTables]).close();
    expect(() => openDatabase(dir, 't.db', [createTables, dropParent])).toThrow(MigrationError);
    const db = openDatabase(dir, 't.db', [createTables]);
    try {
      expect(db.pragma('user_version', { simple: true })).toBe(1);
      expect(db.prepare('SELECT id FROM parent').all()).toEqual([{ id: 'a' }]);
    } finally {
      db.close();
    }
  });
});
