/** catalog v1 and v2 answer differently, and the gateway shows which one answered. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { loadCatalogProtos } from '../../demo-services/catalog/proto.js';
import { Processes } from '../support/index.js';
import { http, startService, type ServiceProcess } from './stack.js';

const dataDir = mkdtempSync(join(tmpdir(), 'skein-demo-catalog-'));
const children = new Processes();
const procs: ServiceProcess[] = [];
const gateways: Record<string, string> = {};

beforeAll(async () => {
  const start = (name: string, args: string[] = [], env: Record<string, string> = {}) => {
    const p = startService(children, name, { dataDir, args, env });
    procs.push(p);
    return p.ready();
  };
  const [v1, v2, inventory] = await Promise.all([start('catalog', ['--version', 'v1']), start('catalog', ['--version', 'v2', '--health-port', '0']), start('inventory')]);
  for (const [version, catalog] of [['v1', v1], ['v2', v2]] as const) {
    const gw = await start('gateway', [], { DEMO_DIRECT_CATALOG: catalog.address, DEMO_DIRECT_INVENTORY: inventory.address });
    gateways[version] = gw.url;
  }
});
afterAll(async () => {
  await children.killAll();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('catalog versions', () => {
  it('v1 has list prices only; v2 adds a discounted price; both name their version', async () => {
    const v1 = (await http('GET', `${gateways.v1}/api/products`)).body;
    const v2 = (await http('GET', `${gateways.v2}/api/products`)).body;
    expect(v1.catalogVersion).toBe('v1');
    expect(v2.catalogVersion).toBe('v2');
    expect(v1.products.map((p: { id: string }) => p.id)).toEqual(v2.products.map((p: { id: string }) => p.id));
    for (const p of v1.products) {
      expect(p.catalogVersion).toBe('v1');
      expect(p).not.toHaveProperty('discountedPriceCents');
    }
    for (const p of v2.products) {
      expect(p.catalogVersion).toBe('v2');
      expect(p.discountedPriceCents).toBeLessThan(p.priceCents);
    }
    expect((await http('GET', `${gateways.v2}/api/products/p1`)).body).toMatchObject({ id: 'p1', catalogVersion: 'v2', discountedPriceCents: expect.any(Number) });
  });

  it('answers health checks: grpc.health.v1 on its port, HTTP /health on --health-port', async () => {
    const v2 = procs[1]!;
    const line = v2.logs.find((l) => l.includes('healthPort'))!;
    const healthPort = (JSON.parse(line) as { healthPort: number }).healthPort;
    const res = await http('GET', `http://127.0.0.1:${healthPort}/health`);
    expect(res.body).toEqual({ status: 'ok', service: 'catalog', version: 'v2' });

    const { health } = loadCatalogProtos();
    const client = new health(v2.address, grpc.credentials.createInsecure()) as unknown as grpc.Client & { Check: (req: object, cb: (err: Error | null, r: unknown) => void) => void };
    try {
      const answer = await new Promise((resolve, reject) => client.Check({}, (err: Error | null, r: unknown) => (err ? reject(err) : resolve(r))));
      expect(answer).toEqual({ status: 'SERVING' });
    } finally {
      client.close();
    }
  });

  it('each version keeps its own database file', async () => {
    const { readdirSync } = await import('node:fs');
    expect(readdirSync(dataDir).filter((f) => f.endsWith('.db')).sort()).toEqual(['catalog-v1.db', 'catalog-v2.db', 'inventory.db']);
  });
});
