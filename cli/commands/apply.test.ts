/**
 * What `skein apply` reports when a write is refused after the whole-file check passed (the
 * mesh changed in between): against a real HTTP server on 127.0.0.1 playing the admin API.
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminClient } from '../admin-client.js';
import { writeAll, writesOf } from './apply.js';

let server: Server;
let url: string;
const seen: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    req.resume();
    if (req.url === '/api/v1/routes/catalog') {
      res.writeHead(422, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'invalid', message: 'fails', problems: ['[0].split.v9: unknown subset "v9" of catalog'] } }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'skein-snapshot-version': '7' });
    res.end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterAll(() => new Promise((resolve) => server.close(resolve)));

describe('skein apply writes', () => {
  it('names the refused document, what was applied and what was not, and stops there', async () => {
    const writes = writesOf({ services: { catalog: { timeout: '7s' } }, routes: { catalog: [{ split: { v9: 100 } }], orders: [] }, intentions: { defaultAction: 'deny' } });
    const err = await writeAll(new AdminClient(url), writes).then(() => undefined, (e: Error) => e);
    expect(err?.message).toBe(
      'routes.catalog was refused (422 invalid):\n  [0].split.v9: unknown subset "v9" of catalog\napplied: policy catalog (snapshot 7)\nnot applied: routes.catalog, routes.orders, intentions',
    );
    expect(seen).toEqual(['PUT /api/v1/services/catalog/policy', 'PUT /api/v1/routes/catalog']);
  });
});
