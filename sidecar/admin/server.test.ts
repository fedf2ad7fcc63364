import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { createAdminServer, type AdminDeps } from './server.js';

describe('admin server: each endpoint with its methods and status codes', () => {
  let server: Server;
  let base: string;
  let blockers: string[] = [];
  let drains = 0;

  beforeAll(async () => {
    const deps: AdminDeps = {
      notReady: () => blockers,
      metricsText: async () => 'skein_x 1\n',
      metricsContentType: 'text/plain; version=0.0.4; charset=utf-8',
      config: () => ({ version: '7' }),
      clusters: () => ({}),
      drain: () => {
        drains++;
        return 3;
      },
      instanceId: 'web-v1-1',
    };
    server = createAdminServer(deps);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('answers GET and HEAD on the read endpoints, and names both in Allow when refusing another method', async () => {
    for (const path of ['/live', '/ready', '/ready/outbound', '/metrics', '/config', '/clusters']) {
      expect((await fetch(base + path)).status, path).toBe(200);
      const head = await fetch(base + path, { method: 'HEAD' });
      expect(head.status, path).toBe(200);
      expect(await head.text(), path).toBe('');
      const post = await fetch(base + path, { method: 'POST' });
      expect(post.status, path).toBe(405);
      expect(post.headers.get('allow'), path).toBe('GET, HEAD');
      expect(((await post.json()) as { error: { code: string } }).error.code, path).toBe('method-not-allowed');
    }
  });

  it('drains on POST /drain only (202 with the in-flight count)', async () => {
    const get = await fetch(`${base}/drain`);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect(drains).toBe(0);
    const post = await fetch(`${base}/drain`, { method: 'POST' });
    expect(post.status).toBe(202);
    expect(await post.json()).toEqual({ draining: true, inFlight: 3 });
    expect(drains).toBe(1);
  });

  it('answers /ready 503 with each reason, and for a check naming another instance', async () => {
    blockers = ['config not applied yet'];
    const notReady = await fetch(`${base}/ready`);
    expect(notReady.status).toBe(503);
    expect(await notReady.text()).toContain('- config not applied yet');
    blockers = [];
    expect((await fetch(`${base}/ready?instance=web-v1-1`)).status).toBe(200);
    expect((await fetch(`${base}/ready?instance=web-v1-0`)).status).toBe(503);
  });

  it('answers 404 with a JSON error for an unknown path', async () => {
    const res = await fetch(`${base}/stats`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('not-found');
  });
});
