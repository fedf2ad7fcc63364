/**
 * `catalog`: the product catalog over gRPC (catalog.proto). Two versions for the canary:
 * v2 answers with a discounted price, v1 does not; both say which version answered. Also
 * serves grpc.health.v1, and plain HTTP `/health` on --health-port when given.
 */
import * as grpc from '@grpc/grpc-js';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { openDatabase, type Db } from '../shared/db.js';
import { UsageError } from '../shared/options.js';
import type { ServiceApp, ServiceDefinition } from '../shared/service.js';
import { loadCatalogProtos, type ListProductsResponse, type Product } from './proto.js';

/** The seed catalog; inventory seeds stock for the same ids. */
const SEED_PRODUCTS = [
  { id: 'p1', name: 'Mechanical keyboard', description: 'Tenkeyless, brown switches', priceCents: 8900 },
  { id: 'p2', name: 'Wireless mouse', description: 'Ergonomic, 4000 dpi', priceCents: 3900 },
  { id: 'p3', name: 'USB-C hub', description: '7 ports, 100 W pass-through', priceCents: 4500 },
  { id: 'p4', name: '27" monitor', description: '1440p, 144 Hz', priceCents: 29900 },
  { id: 'p5', name: 'Laptop stand', description: 'Aluminium, adjustable', priceCents: 2900 },
  { id: 'p6', name: 'Noise-cancelling headphones', description: 'Over-ear, 30 h battery', priceCents: 19900 },
] as const;

const V2_DISCOUNT = 0.9;

interface ProductRow {
  id: string;
  name: string;
  description: string;
  price_cents: number;
  currency: string;
}

function migrate(db: Db): void {
  db.exec(`CREATE TABLE products (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
    currency TEXT NOT NULL DEFAULT 'USD'
  )`);
  const insert = db.prepare('INSERT INTO products (id, name, description, price_cents) VALUES (@id, @name, @description, @priceCents)');
  for (const p of SEED_PRODUCTS) insert.run(p);
}

export const catalog: ServiceDefinition = {
  name: 'catalog',
  flags: {
    version: { description: 'catalog version this instance serves: v1 or v2', default: 'v1' },
    'health-port': { description: 'also serve HTTP GET /health on this port (0 = any free port)', default: '' },
  },
  start({ flags, dataDir, log }): ServiceApp {
    const version = flags.version!;
    if (version !== 'v1' && version !== 'v2') throw new UsageError(`--version must be v1 or v2, got "${version}"`);
    // One file per instance: a v1 and a v2 never share a database.
    const db = openDatabase(dataDir, `catalog-${version}.db`, [migrate]);
    const all = db.prepare<[], ProductRow>('SELECT * FROM products ORDER BY id');
    const byId = db.prepare<[string], ProductRow>('SELECT * FROM products WHERE id = ?');

    const toProduct = (r: ProductRow): Product => ({
      id: r.id,
      name: r.name,
      description: r.description,
      priceCents: r.price_cents,
      currency: r.currency,
      version,
      ...(version === 'v2' ? { discountedPriceCents: Math.round(r.price_cents * V2_DISCOUNT) } : {}),
    });

    const protos = loadCatalogProtos();
    const server = new grpc.Server();
    server.addService(protos.catalog.service, {
      ListProducts: (_call: unknown, done: grpc.sendUnaryData<ListProductsResponse>) => {
        done(null, { products: all.all().map(toProduct), version });
      },
      GetProduct: (call: grpc.ServerUnaryCall<{ id: string }, Product>, done: grpc.sendUnaryData<Product>) => {
        const row = byId.get(call.request.id);
        if (!row) {
          done({ code: grpc.status.NOT_FOUND, details: `no product with id "${call.request.id}"` });
          return;
        }
        done(null, toProduct(row));
      },
    });
    server.addService(protos.health.service, {
      Check: (_call: unknown, done: grpc.sendUnaryData<{ status: string }>) => done(null, { status: 'SERVING' }),
    });

    const health = createServer((req, res) => {
      const ok = req.url === '/health' && req.method === 'GET';
      res.writeHead(ok ? 200 : 404, { 'content-type': 'application/json' });
      res.end(JSON.stringify(ok ? { status: 'ok', service: 'catalog', version } : { error: { code: 'not-found', message: 'only GET /health here' } }));
    });

    return {
      async listen(host, port) {
        const bound = await new Promise<number>((resolve, reject) =>
          server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
        );
        if (flags['health-port'] !== '') {
          health.listen(Number(flags['health-port']), host);
          await once(health, 'listening');
          log.info({ healthPort: (health.address() as { port: number }).port }, 'HTTP /health listening');
        }
        log.info({ version }, `catalog ${version} serving`);
        return bound;
      },
      async stopListening() {
        const timer = setTimeout(() => server.forceShutdown(), 5_000);
        await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
        clearTimeout(timer);
        if (health.listening) await new Promise<void>((resolve) => health.close(() => resolve()));
      },
      async close() {
        db.close();
      },
    };
  },
};
