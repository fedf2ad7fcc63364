/** `users`: the shop's customers. Seeded with u1, u2, u3 on first start. */
import { openDatabase, type Db } from '../shared/db.js';
import { HttpError } from '../shared/http-errors.js';
import { Router } from '../shared/http-server.js';
import { httpApp, type ServiceDefinition } from '../shared/service.js';

const SEED = [
  { id: 'u1', name: 'Ada Lovelace', email: 'ada@example.com' },
  { id: 'u2', name: 'Grace Hopper', email: 'grace@example.com' },
  { id: 'u3', name: 'Alan Turing', email: 'alan@example.com' },
];

interface UserRow {
  id: string;
  name: string;
  email: string;
  created_at: string;
}

function migrate(db: Db): void {
  db.exec(`CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
  )`);
  const insert = db.prepare('INSERT INTO users (id, name, email) VALUES (@id, @name, @email)');
  for (const u of SEED) insert.run(u);
}

const toJson = (r: UserRow) => ({ id: r.id, name: r.name, email: r.email, createdAt: r.created_at });

export const users: ServiceDefinition = {
  name: 'users',
  start({ dataDir, log }) {
    const db = openDatabase(dataDir, 'users.db', [migrate]);
    const byId = db.prepare<[string], UserRow>('SELECT * FROM users WHERE id = ?');
    const all = db.prepare<[], UserRow>('SELECT * FROM users ORDER BY id');
    const router = new Router()
      .add('GET', '/health', () => ({ body: { status: 'ok', service: 'users' } }))
      .add('GET', '/users', () => ({ body: { users: all.all().map(toJson) } }))
      .add('GET', '/users/:id', ({ params }) => {
        const row = byId.get(params.id!);
        if (!row) throw new HttpError(404, 'user-not-found', `no user with id "${params.id}"`);
        return { body: toJson(row) };
      });
    return httpApp(router.listener(log), () => void db.close());
  },
};
