/**
 * The HTTP services with real sidecars (static mode, plain inbound): orders reaches
 * inventory, payments and notifications only through its sidecar's outbound listener, by
 * name, and the outbox rides out notifications being down behind its sidecar.
 * (gateway → catalog is gRPC through the sidecar and is covered once the sidecar carries gRPC.)
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts, Processes, tempDir, waitForHttp, waitUntil, writeTempConfig } from '../support/index.js';
import { http, ORDERS_TEST_ARGS, startService, type ServiceProcess } from './stack.js';

const SERVICES = ['orders', 'inventory', 'payments', 'notifications'] as const;
type Name = (typeof SERVICES)[number];
interface Ports {
  app: number;
  inbound: number;
  outbound: number;
  admin: number;
}

const procs = new Processes();
const dataDir = tempDir('skein-demo-mesh-');
const ports = {} as Record<Name, Ports>;
const apps = {} as Record<Name, ServiceProcess>;

function startApp(name: Name): Promise<ServiceProcess> {
  const p = startService(procs, name, {
    dataDir,
    port: ports[name].app,
    env: { SKEIN_OUTBOUND: `http://127.0.0.1:${ports[name].outbound}` },
    args: name === 'orders' ? ORDERS_TEST_ARGS : [],
  });
  apps[name] = p;
  return p.ready();
}

beforeAll(async () => {
  const free = await freePorts(SERVICES.length * 4);
  SERVICES.forEach((name, i) => {
    const [app, inbound, outbound, admin] = free.slice(i * 4, i * 4 + 4) as [number, number, number, number];
    ports[name] = { app, inbound, outbound, admin };
  });
  const config = writeTempConfig({
    version: '1',
    services: Object.fromEntries(SERVICES.map((name) => [name, { endpoints: [{ address: '127.0.0.1', port: ports[name].inbound, labels: { version: 'v1' } }] }])),
  });
  await Promise.all(SERVICES.map(startApp));
  await Promise.all(
    SERVICES.map((name) => {
      const p = ports[name];
      const child = procs.skein(`sidecar ${name}`, [
        'sidecar', '--service', name, '--app-port', String(p.app), '--config', config,
        '--inbound-host', '127.0.0.1', '--inbound-port', String(p.inbound), '--outbound-port', String(p.outbound),
        '--admin-port', String(p.admin), '--advertise-address', '127.0.0.1', '--drain-timeout', '1s',
      ]);
      return waitForHttp(child, `http://127.0.0.1:${p.admin}/ready`);
    }),
  );
});
afterAll(async () => {
  await procs.killAll();
  rmSync(dataDir, { recursive: true, force: true });
});

const order = (key: string, productId = 'p1') =>
  http('POST', `${apps.orders.url}/orders`, { userId: 'u1', items: [{ productId, name: productId, quantity: 1, unitPriceCents: 1000 }] }, { 'idempotency-key': key });

async function outboundRequests(destination: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${ports.orders.admin}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith('skein_requests_total{') && l.includes('direction="outbound"') && l.includes(`destination="${destination}"`))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

const notificationsOf = async (orderId: string) =>
  (await http('GET', `http://127.0.0.1:${ports.notifications.app}/notifications?userId=u1`)).body.notifications.filter((n: { orderId: string }) => n.orderId === orderId);

describe('demo services through sidecars', () => {
  it('places an order with every call going through the orders sidecar by service name', async () => {
    const res = await order('mesh-1');
    expect(res.status).toBe(201);
    expect(res.body.status).toBe('confirmed');
    await waitUntil(async () => (await notificationsOf(res.body.id)).length === 1, { timeoutMs: 10_000, what: 'the notification' });
    expect(await outboundRequests('inventory')).toBeGreaterThanOrEqual(1);
    expect(await outboundRequests('payments')).toBeGreaterThanOrEqual(1);
    expect(await outboundRequests('notifications')).toBeGreaterThanOrEqual(1);
  });

  it('keeps events while notifications is down behind its sidecar and delivers them once it is back', async () => {
    await apps.notifications.stop('SIGKILL');
    const res = await order('mesh-2', 'p2');
    expect(res.body.status).toBe('confirmed');
    await waitUntil(() => apps.orders.logs.some((l) => l.includes('event delivery failed') && l.includes('sidecar answered')), {
      timeoutMs: 10_000,
      what: 'a delivery refused by the notifications sidecar',
    });
    await startApp('notifications');
    const delivered = await waitUntil(async () => {
      const list = await notificationsOf(res.body.id);
      return list.length > 0 ? list : undefined;
    }, { timeoutMs: 20_000, what: 'the delayed notification' });
    expect(delivered).toHaveLength(1);
  });
});
