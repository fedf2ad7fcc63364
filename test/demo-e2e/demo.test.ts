/**
 * `skein demo` end to end: one real demo (control plane, nine app processes each with its
 * own sidecar process, Consul when the build can use it) on free ports and a temp data dir,
 * without the load generator so every request below is the test's own. Tests run in order
 * against it; the last one stops it and checks no process it started survives.
 */
import { randomUUID } from 'node:crypto';
import { connect } from 'node:tls';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consulServices, findConsulBinary } from '../../demo/consul.js';
import { DemoClient, sumMetric } from '../../demo/scenarios/demo-client.js';
import { Processes, repoRoot, skeinBin, waitUntil } from '../support/index.js';
import { destroyDemo, isAlive, recordedPids, startDemo, type DemoProcess } from './demo-process.js';

const procs = new Processes();
let demo: DemoProcess;
let client: DemoClient;

beforeAll(async () => {
  demo = await startDemo(procs, ['--no-load']);
  client = new DemoClient(demo.state);
}, 260_000);

afterAll(async () => {
  await procs.killAll();
  if (demo) await destroyDemo(demo.dataDir);
});

async function scenario(name: string): Promise<{ code: number | null; output: string }> {
  const child = procs.spawn(`scenario ${name}`, process.execPath, [skeinBin, 'demo', 'scenario', name, '--data-dir', demo.dataDir, '--hold', '0']);
  const exit = await child.exited;
  return { code: exit.code, output: child.output() };
}

async function post(path: string, body: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${demo.state.gatewayUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string } } };
}

const INSTANCES = ['gateway', 'users', 'catalog-v1', 'catalog-v2', 'inventory', 'orders', 'payments-1', 'payments-2', 'notifications'];

describe('skein demo', () => {
  it('reports each step while starting, then the URLs and the admin token', () => {
    const out = demo.child.output();
    for (const id of INSTANCES) {
      expect(out).toMatch(new RegExp(`✓ \\[ *[\\d.]+ s\\] ${id} `));
    }
    expect(out).toContain(`Shop (gateway)   ${demo.state.gatewayUrl}/api/products`);
    expect(out).toContain(`Dashboard        ${demo.state.adminUrl}/`);
    expect(out).toContain(`Admin token      ${demo.state.adminToken}`);
    expect(demo.state.adminToken).toMatch(/^\S{16,}$/);
    expect(out).toMatch(/skein demo scenario NAME/);
  });

  it('writes one log file per process under the data dir', () => {
    const logs = readdirSync(join(demo.dataDir, 'logs'));
    for (const id of INSTANCES) expect(logs).toEqual(expect.arrayContaining([`${id}.log`, `${id}.sidecar.log`]));
    expect(logs).toEqual(expect.arrayContaining(['control-plane.log', ...(demo.state.registry === 'consul' ? ['consul.log'] : [])]));
    expect(readFileSync(join(demo.dataDir, 'logs', 'orders.log'), 'utf8')).toMatch(/listening on 127\.0\.0\.1:\d+/);
  });

  it('keeps the gateway sidecar\'s access log: the shop\'s requests coming in, and its calls on to the services', async () => {
    const res = await fetch(`${demo.state.gatewayUrl}/api/products`, { headers: { 'x-request-id': 'demo-access-log-1' } });
    expect(res.status).toBe(200);
    const path = join(demo.dataDir, 'logs', 'gateway.access.log');
    // The gateway's app takes the request itself (its public port); its sidecar logs the calls it makes on, with the request id passed along.
    const lines = await waitUntil(() => {
      const found = readFileSync(path, 'utf8').split('\n').filter((l) => l.includes(' demo-access-log-1 '));
      return found.length > 0 && found;
    }, { what: 'the access log lines of the request' });
    expect(lines.some((l) => /^\[\S+Z\] outbound "GET \S+ (http|grpc)" 200 /.test(l)), lines.join('\n')).toBe(true);
  });

  it('places orders through the gateway, each customer\'s own, and their notifications arrive', async () => {
    const placed = await client.placeOrder('u1', [{ productId: 'p2', quantity: 2 }]);
    expect(placed.status).toBe(201);
    expect(placed.order).toMatchObject({ status: 'confirmed', userId: 'u1' });
    expect(placed.order!.steps.map((s) => `${s.step}:${s.outcome}`)).toEqual(['reserve:ok', 'charge:ok', 'confirm:ok']);
    expect((await client.order('u1', placed.order!.id)).status).toBe('confirmed');
    const replay = await client.placeOrder('u1', [{ productId: 'p2', quantity: 2 }], 'same-key');
    const again = await client.placeOrder('u1', [{ productId: 'p2', quantity: 2 }], 'same-key');
    expect(again.order!.id).toBe(replay.order!.id);
    // Keys and orders are each customer's own, through the mesh as in direct mode.
    const otherCustomer = await client.placeOrder('u2', [{ productId: 'p2', quantity: 2 }], 'same-key');
    expect(otherCustomer.order).toMatchObject({ status: 'confirmed', userId: 'u2' });
    expect(otherCustomer.order!.id).not.toBe(replay.order!.id);
    await expect(client.order('u2', placed.order!.id)).rejects.toThrow(/answered 404/);
    await waitUntil(async () => (await client.notifications('u1')).some((n) => n.orderId === placed.order!.id), { timeoutMs: 15_000, what: 'the OrderCreated notification' });
  });

  it('records one shop order as one trace across every service it touched, hop by hop', async () => {
    const res = await fetch(`${demo.state.gatewayUrl}/api/orders`, {
      method: 'POST',
      // A key per try: a retried test replaying an earlier key would get the stored order, which calls nobody.
      headers: { 'content-type': 'application/json', 'idempotency-key': `traced-order-${randomUUID()}` },
      body: JSON.stringify({ userId: 'u2', items: [{ productId: 'p1', quantity: 1 }] }),
    });
    expect(res.status).toBe(201);
    const traceId = res.headers.get('traceresponse')?.split('-')[1];
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    type Span = { spanId: string; parentSpanId?: string; service: string; kind: string; destination: string };
    const wanted = ['catalog', 'gateway', 'inventory', 'orders', 'payments', 'users'];
    // Each server span's parent is its caller's client span: gateway → orders → payments.
    const parentOf = (spans: Span[], service: string): Span | undefined => {
      const server = spans.find((s) => s.service === service && s.kind === 'server');
      return server === undefined ? undefined : spans.find((p) => p.spanId === server.parentSpanId);
    };
    // Sidecars report spans every second, each on its own: wait until the ones compared below are all in.
    const trace = await waitUntil(async () => {
      const { status, body } = await client.json<{ services: string[]; spanList: Span[] }>(`${demo.state.adminUrl}/api/v1/traces/${traceId}`);
      return status === 200 && wanted.every((s) => body.services.includes(s)) && parentOf(body.spanList, 'orders') && parentOf(body.spanList, 'payments') ? body : undefined;
    }, { timeoutMs: 15_000, what: `trace ${traceId} to hold gateway → orders → payments` });
    expect(parentOf(trace.spanList, 'orders')).toMatchObject({ service: 'gateway', kind: 'client', destination: 'orders' });
    expect(parentOf(trace.spanList, 'payments')).toMatchObject({ service: 'orders', kind: 'client', destination: 'payments' });
  });

  it('answers bad input at the gateway with a 4xx that says what is wrong', async () => {
    const key = { 'idempotency-key': 'bad-input' };
    const malformed = await post('/api/orders', '{"userId": "u1", "items": [', key);
    expect(malformed.status).toBe(400);
    expect(malformed.body.error).toMatchObject({ code: 'invalid-json' });
    const unknown = await post('/api/orders', JSON.stringify({ userId: 'u1', items: [{ productId: 'p404', quantity: 1 }] }), key);
    expect(unknown.status).toBe(422);
    expect(unknown.body.error).toMatchObject({ code: 'unknown-product' });
    expect(unknown.body.error!.message).toContain('p404');
    const negative = await post('/api/orders', JSON.stringify({ userId: 'u1', items: [{ productId: 'p1', quantity: -2 }] }), key);
    expect(negative.status).toBe(422);
    expect(negative.body.error).toMatchObject({ code: 'invalid-order' });
    expect(negative.body.error!.message).toContain('items[0].quantity: must be at least 1');
    const missing = await (await fetch(`${demo.state.gatewayUrl}/api/products/p404`)).json();
    expect(missing).toMatchObject({ error: { code: 'product-not-found' } });
  });

  it('sends service-to-service traffic over mTLS: destinations count requests by the caller\'s certificate identity', async () => {
    await client.placeOrder('u2', [{ productId: 'p1', quantity: 1 }]);
    const inbound = (id: string, source: string, destination: string) => client.metric(id, 'skein_requests_total', { direction: 'inbound', source, destination });
    expect(await inbound('orders', 'gateway', 'orders')).toBeGreaterThan(0);
    expect(await inbound('users', 'gateway', 'users')).toBeGreaterThan(0);
    expect(await inbound('inventory', 'orders', 'inventory')).toBeGreaterThan(0);
    expect((await inbound('payments-1', 'orders', 'payments')) + (await inbound('payments-2', 'orders', 'payments'))).toBeGreaterThan(0);
    expect(await inbound('catalog-v1', 'gateway', 'catalog')).toBeGreaterThan(0);

    // A caller without a client certificate is refused at the handshake and counted.
    const failures = () => client.metric('orders', 'skein_tls_handshake_failures_total', { reason: 'no-client-certificate' });
    const before = await failures();
    await new Promise<void>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: client.instance('orders').inboundPort, rejectUnauthorized: false }, () => socket.write('GET /health HTTP/1.1\r\nhost: orders\r\n\r\n'));
      socket.on('data', () => undefined);
      socket.once('error', () => resolve());
      socket.once('close', () => resolve());
    });
    await waitUntil(async () => (await failures()) > before, { timeoutMs: 5_000, what: 'the refused handshake to be counted' });
  });

  it('keeps calls nobody allowed out (intentions default to deny)', async () => {
    // notifications never calls payments; its sidecar's request is refused by payments' sidecar.
    const res = await request(`http://127.0.0.1:${client.instance('notifications').outboundPort}/charges?userId=u1`, { headers: { host: 'payments' } });
    await res.body.text();
    expect(res.statusCode).toBe(403);
    expect(res.headers['x-skein-reason']).toBe('denied');
  });

  it('registers every service in Consul (skipped only when no consul binary is at hand)', async (ctx) => {
    if (demo.state.registry !== 'consul') {
      // With a binary at hand the demo must have used it; without one it says so.
      const binary = await findConsulBinary(repoRoot);
      expect(binary.path, `a consul binary is at ${binary.path}, yet the demo ran on the built-in registry`).toBeUndefined();
      expect(demo.child.output()).toContain("Using the control plane's built-in registry");
      ctx.skip();
    }
    const services = await consulServices(demo.state.consulUrl!);
    expect(services.sort()).toEqual(['catalog', 'gateway', 'inventory', 'notifications', 'orders', 'payments', 'users']);
  });

  it('changing the catalog split changes the share of v2 answers at the gateway', async () => {
    const measure = async (v2: number) => {
      const version = await client.setSplit({ v1: 100 - v2, v2 });
      await client.waitForSnapshot('gateway', version!);
      return client.catalogShare(60);
    };
    const none = await measure(0);
    expect(none).toEqual({ v1: 60, v2: 0, failed: 0 });
    const half = await measure(50);
    expect(half.failed).toBe(0);
    expect(half.v2).toBeGreaterThanOrEqual(15);
    expect(half.v2).toBeLessThanOrEqual(45);
    // One version prices a whole order, even while each catalog call may go either way.
    const listPrice = new Map(((await (await fetch(`${demo.state.gatewayUrl}/api/products`)).json()) as { products: { id: string; priceCents: number }[] }).products.map((p) => [p.id, p.priceCents]));
    const pricing: string[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await post('/api/orders', JSON.stringify({ userId: 'u2', items: ['p1', 'p2', 'p3', 'p5'].map((productId) => ({ productId, quantity: 1 })) }), { 'idempotency-key': randomUUID() });
      expect(res.status).toBe(201);
      const items = (res.body as { items: { productId: string; unitPriceCents: number }[] }).items;
      pricing.push(items.map((item) => (item.unitPriceCents < listPrice.get(item.productId)! ? 'v2' : 'v1')).join(','));
    }
    for (const order of pricing) expect(order).toMatch(/^(v1,v1,v1,v1|v2,v2,v2,v2)$/);
    const all = await measure(100);
    expect(all).toEqual({ v1: 0, v2: 60, failed: 0 });
    await measure(0);
  });

  it('canary scenario: v2 takes 10 %, 50 %, then all of the product views', async () => {
    const { code, output } = await scenario('canary');
    expect(output).toMatch(/✓ v2 share \d+% for a weight of 10%, no failed request/);
    expect(output).toContain('✓ v2 share 100% for a weight of 100%, no failed request');
    expect(code, output).toBe(0);
  });

  it('blue-green scenario: all traffic to v2 in one change, then all back to v1', async () => {
    const { code, output } = await scenario('blue-green');
    expect(output).toContain('✓ v2 share 100% for a weight of 100%, no failed request');
    expect(output).toContain('✓ v2 share 0% for a weight of 0%, no failed request');
    expect(code, output).toBe(0);
    expect(await client.catalogShare(10)).toEqual({ v1: 10, v2: 0, failed: 0 });
  });

  it('affinity scenario: payments is ring-hashed on Idempotency-Key, so each key\'s requests reach the replica skein explain names', async () => {
    const { code, output } = await scenario('affinity');
    expect(output).toContain('✓ keys go to payments-1 and payments-2: the ring spreads keys over every replica');
    expect(output).toMatch(/✓ all \d+ requests reached the replica skein explain named for their key/);
    expect(code, output).toBe(0);

    // Checked again without the scenario: the CLI's explain, then the shop's own traffic.
    const explained = async (key: string) => {
      const cli = procs.skein('explain', ['explain', 'payments', 'POST', '/charges', '-H', `idempotency-key:${key}`], { SKEIN_ADMIN_URL: demo.state.adminUrl, SKEIN_ADMIN_TOKEN: demo.state.adminToken });
      expect((await cli.exited).code, cli.output()).toBe(0);
      const endpoint = new RegExp(`ring-hash on header idempotency-key "${key}": (\\S+), for every request with it`).exec(cli.output())?.[1];
      return client.instanceAt(endpoint ?? '')?.id;
    };
    const key = `affinity-test-${randomUUID()}`;
    const replica = await explained(key);
    expect(replica).toMatch(/^payments-[12]$/);
    const answeredBy: unknown[] = [];
    for (let n = 0; n < 5; n++) {
      const res = await client.callAs('orders', 'payments', 'POST', '/charges', { headers: { 'idempotency-key': key }, body: { userId: 'affinity-test', amountCents: 100 } });
      expect(res.status).toBeLessThan(300);
      answeredBy.push(res.headers['payments-replica']);
    }
    expect(answeredBy).toEqual(Array(5).fill(replica));

    // An order's charge is keyed by the order id: it reaches the replica explain names for that id (no load runs, so each sidecar counts only these).
    const charges = (id: string) => client.metric(id, 'skein_requests_total', { direction: 'inbound', source: 'orders', destination: 'payments' });
    for (let n = 0; n < 4; n++) {
      const before: Record<string, number> = { 'payments-1': await charges('payments-1'), 'payments-2': await charges('payments-2') };
      const placed = await client.placeOrder('u1', [{ productId: 'p1', quantity: 1 }]);
      expect(placed.order?.status).toBe('confirmed');
      const chosen = (await explained(placed.order!.id))!;
      const other = chosen === 'payments-1' ? 'payments-2' : 'payments-1';
      await waitUntil(async () => (await charges(chosen)) === before[chosen]! + 1, { timeoutMs: 5_000, what: `${placed.order!.id}'s charge to be counted on ${chosen}` });
      expect(await charges(other)).toBe(before[other]);
    }
  });

  it('payments outage: the circuit opens, orders are cancelled with their stock released, nobody is charged twice', async () => {
    const stockBefore = await client.stock('p3');
    expect(stockBefore).toBeGreaterThanOrEqual(100); // so the scenario has no reason to restock it
    const { code, output } = await scenario('payments-outage');
    expect(output).toContain("✓ orders' sidecar opened the circuit to payments");
    expect(code, output).toBe(0);
    expect(output).not.toContain('restocking');
    // Checked again from the services' own records. The scenario used u3 and p3 only, left
    // p3's stock as it was, and placed one more order after the outage, which went through.
    const cancelled = [...output.matchAll(/^ +\d+\. (ord_[0-9a-f]+) cancelled/gm)].map((m) => m[1]!);
    expect(cancelled.length).toBeGreaterThanOrEqual(10);
    for (const id of cancelled) {
      expect((await client.order('u3', id)).status).toBe('cancelled');
      expect(await client.reservation(id)).toBe('released');
      expect(await client.charge(id)).not.toBe('captured');
    }
    expect(await client.stock('p3')).toBe(stockBefore - 1);
    const { body } = await client.json<{ charges: { id: string; status: string }[] }>(`${client.appUrl('payments-1')}/charges?userId=u3`);
    const captured = body.charges.filter((c) => c.status === 'captured');
    expect(captured).toHaveLength(1);
    expect((await client.order('u3', captured[0]!.id)).status).toBe('confirmed');
  });

  it('kill-instance: no order fails while a payments instance is down, and it comes back', async () => {
    const { code, output } = await scenario('kill-instance');
    expect(code, output).toBe(0);
    await client.refresh();
    expect(client.instance('payments-2').running).toBe(true);
  });

  it('notifications-down: events wait in the outbox and all arrive once it is back', async () => {
    const { code, output } = await scenario('notifications-down');
    expect(output).toMatch(/✓ \d+ events waiting in orders' outbox/);
    expect(code, output).toBe(0);
  });

  it('stops in order on Ctrl-C (SIGINT) and leaves no process behind', async () => {
    await client.refresh();
    const pids = recordedPids(demo.dataDir);
    expect(pids.length).toBeGreaterThanOrEqual(1 + 2 * 9);
    demo.child.kill('SIGINT');
    const exit = await demo.child.exited;
    expect(exit.code, demo.child.output()).toBe(0);
    const out = demo.child.output();
    const stages = ['stopped 9 sidecars', 'stopped 9 services', 'stopped control plane', ...(demo.state.registry === 'consul' ? ['stopped Consul'] : [])];
    const order = stages.map((s) => out.indexOf(s));
    expect(order.every((i) => i > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(pids.filter(isAlive)).toEqual([]);
    expect(existsSync(join(demo.dataDir, 'demo.json'))).toBe(false);
    expect(existsSync(join(demo.dataDir, 'demo.pids'))).toBe(false);
  });
});
