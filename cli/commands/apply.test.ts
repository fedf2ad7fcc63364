/**
 * What `skein apply` does against a control plane older than POST /api/v1/apply (it answers
 * 404 there): it says so, checks the file whole, then writes it document by document, and
 * reports a write refused after the check passed (the mesh changed in between). Against a
 * real HTTP server on 127.0.0.1 playing such an admin API.
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AdminClient } from '../admin-client.js';
import { applyFileTo, writeAll, writesOf } from './apply.js';

let server: Server;
let url: string;
const seen: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    req.resume();
    if (req.url === '/api/v1/apply') {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'not-found', message: 'no such endpoint: /api/v1/apply' } }));
      return;
    }
    if (req.url === '/api/v1/routes/catalog') {
      res.writeHead(422, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'invalid', message: 'fails', problems: ['[0].split.v9: unknown subset "v9" of catalog'] } }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'skein-snapshot-version': '7' });
    // A check that passed answers {ok: true}, as every control plane with /api/v1/apply/check does.
    res.end(req.url === '/api/v1/apply/check' ? '{"ok":true}' : '{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
beforeEach(() => {
  seen.length = 0;
});

afterAll(() => new Promise((resolve) => server.close(resolve)));

describe('skein apply against an older control plane', () => {
  it('says so, checks the file whole, then writes policies, routes and intentions one by one', async () => {
    const notices: string[] = [];
    const applied = await applyFileTo(new AdminClient(url), 'mesh.yaml', { services: { orders: { timeout: '7s' } }, intentions: { defaultAction: 'deny' } }, (line) => notices.push(line));
    expect(notices).toEqual([`${url} has no POST /api/v1/apply (an older control plane): checking mesh.yaml whole, then writing it one document at a time`]);
    expect(seen).toEqual(['POST /api/v1/apply', 'POST /api/v1/apply/check', 'PUT /api/v1/services/orders/policy', 'PUT /api/v1/intentions']);
    expect(applied).toEqual([{ kind: 'policy', name: 'orders', snapshotVersion: '7' }, { kind: 'intentions', name: '-', snapshotVersion: '7' }]);
  });

  it('names the refused document, what was applied and what was not, and stops there', async () => {
    const writes = writesOf({ services: { catalog: { timeout: '7s' } }, routes: { catalog: [{ split: { v9: 100 } }], orders: [] }, intentions: { defaultAction: 'deny' } });
    const err = await writeAll(new AdminClient(url), writes).then(() => undefined, (e: Error) => e);
    expect(err?.message).toBe(
      'routes.catalog was refused (422 invalid):\n  [0].split.v9: unknown subset "v9" of catalog\napplied: policy catalog (snapshot 7)\nnot applied: routes.catalog, routes.orders, intentions',
    );
    expect(seen).toEqual(['PUT /api/v1/services/catalog/policy', 'PUT /api/v1/routes/catalog']);
  });
});
