import { afterEach, describe, expect, it } from 'vitest';
import { ControlServer, type DemoControl } from './control-server.js';
import type { DemoState } from './state.js';

const TOKEN = 'the-admin-token-0123456789abcdef';

const state = {
  pid: 1,
  startedAt: '2026-01-01T00:00:00.000Z',
  dataDir: '/tmp/demo',
  gatewayUrl: 'http://127.0.0.1:1',
  adminUrl: 'http://127.0.0.1:2',
  dashboardUrl: 'http://127.0.0.1:2/',
  adminToken: TOKEN,
  grpcAddress: '127.0.0.1:3',
  controlUrl: 'http://127.0.0.1:4',
  registry: 'built-in',
  loadRate: 0,
  instances: [],
  pids: [1],
} satisfies DemoState;

const calls: string[] = [];
const demo: DemoControl = {
  state: () => state,
  stopInstance: async (id, how) => void calls.push(`${how} ${id}`),
  startInstance: async (id) => void calls.push(`start ${id}`),
};

let server: ControlServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
  calls.length = 0;
});

async function started(): Promise<ControlServer> {
  server = new ControlServer(demo, TOKEN);
  await server.listen();
  return server;
}

describe('the demo control endpoint', () => {
  it('gives its state, which holds the admin token, only to a caller that has the token', async () => {
    const { url } = await started();
    for (const headers of [{}, { authorization: 'Bearer wrong' }] as Record<string, string>[]) {
      const res = await fetch(`${url}/state`, { headers });
      expect(res.status).toBe(401);
      expect(await res.text()).not.toContain(TOKEN);
    }
    const ok = await fetch(`${url}/state`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as DemoState).adminToken).toBe(TOKEN);
  });

  it('acts on instances only with the token', async () => {
    const { url } = await started();
    expect((await fetch(`${url}/instances/orders/kill`, { method: 'POST' })).status).toBe(401);
    expect(calls).toEqual([]);
    const res = await fetch(`${url}/instances/orders/kill`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    expect(calls).toEqual(['kill orders']);
  });
});
