import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { LoadGenerator, Window } from './generator.js';

/** A fake gateway and inventory in one server, recording what it was sent. */
async function fakeShop(handle: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => handle(req, res, body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

describe('LoadGenerator', () => {
  it('sends the browse/view/order mix, orders with a fresh Idempotency-Key each, and restocks products running low', async () => {
    const seen: { method: string; url: string; key?: string; body: string }[] = [];
    const shop = await fakeShop((req, res, body) => {
      seen.push({ method: req.method!, url: req.url!, key: req.headers['idempotency-key'] as string | undefined, body });
      if (req.url === '/api/products') return json(res, 200, { products: [{ id: 'p1', stock: 100 }, { id: 'p2', stock: 3 }] });
      if (req.url?.startsWith('/api/products/')) return json(res, 200, { id: 'p1' });
      if (req.url === '/api/orders') return json(res, 201, { status: 'confirmed' });
      if (req.url?.startsWith('/admin/stock/')) return json(res, 200, {});
      json(res, 404, {});
    });
    servers.push(shop.server);
    const lines: string[] = [];
    const load = new LoadGenerator({ gatewayUrl: shop.url, inventoryUrl: shop.url, rate: 1, maxInFlight: 1_000, report: (l) => lines.push(l) });
    for (let i = 0; i < 300; i++) load.tick();
    await load.stop();
    const shopCalls = seen.filter((s) => s.url.startsWith('/api/'));
    // 60/30/10 of 300, within about four standard deviations.
    expect(shopCalls.filter((s) => s.url === '/api/products').length).toBeGreaterThanOrEqual(145);
    expect(shopCalls.filter((s) => s.url === '/api/products').length).toBeLessThanOrEqual(215);
    expect(shopCalls.filter((s) => s.url.startsWith('/api/products/')).length).toBeGreaterThanOrEqual(60);
    expect(shopCalls.filter((s) => s.url.startsWith('/api/products/')).length).toBeLessThanOrEqual(120);
    const orders = shopCalls.filter((s) => s.method === 'POST');
    expect(orders.length).toBeGreaterThanOrEqual(12);
    expect(orders.length).toBeLessThanOrEqual(50);
    expect(new Set(orders.map((o) => o.key)).size).toBe(orders.length);
    for (const o of orders) expect(JSON.parse(o.body)).toMatchObject({ userId: expect.stringMatching(/^u[123]$/), items: [{ productId: expect.stringMatching(/^p\d$/), quantity: expect.any(Number) }] });
    expect(seen.some((s) => s.method === 'PUT' && s.url === '/admin/stock/p2' && JSON.parse(s.body).available === 500)).toBe(true);
    expect(seen.some((s) => s.url === '/admin/stock/p1')).toBe(false);
    expect(lines.at(-1)).toMatch(/100\.0% ok/);
  });

  it('never has more than maxInFlight requests outstanding: ticks beyond that are skipped', async () => {
    const held: ServerResponse[] = [];
    const shop = await fakeShop((_req, res) => held.push(res));
    servers.push(shop.server);
    const lines: string[] = [];
    const load = new LoadGenerator({ gatewayUrl: shop.url, inventoryUrl: shop.url, rate: 1, maxInFlight: 3, report: (l) => lines.push(l), random: () => 0.1 });
    for (let i = 0; i < 10; i++) load.tick();
    const stopped = load.stop();
    await expect.poll(() => held.length).toBe(3);
    for (const res of held) json(res, 500, { error: { code: 'boom' } });
    await stopped;
    expect(lines.at(-1)).toMatch(/failed 3 \[500 boom x3\] skipped 7/);
  });
});

describe('Window', () => {
  it('reports rate, success, the mix, order outcomes and latency percentiles', () => {
    const w = new Window(0);
    w.sent.browse = 6;
    w.sent.order = 2;
    w.ok = 7;
    w.confirmed = 1;
    w.fail('503 upstream-unavailable');
    w.latencies.push(...Array.from({ length: 7 }, (_, i) => (i + 1) * 10));
    expect(w.line(2_000)).toBe('load: 4.0 req/s | 87.5% ok | sent: browse 6 view 0 order 2 | orders confirmed 1 cancelled 0 | p50 40 ms p99 70 ms | failed 1 [503 upstream-unavailable x1] skipped 0');
  });
});
