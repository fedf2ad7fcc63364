/**
 * Routing, splits, subsets and balancers through one real sidecar. In plain mode the
 * outbound side sends to endpoints as plain HTTP, so the endpoints here are test servers
 * that say who they are (`x-upstream`).
 */
import { connect } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SnapshotInput } from '../../common/config/schema.js';
import { echoHandler, Processes, waitUntil, startUpstream, tempDir, writeTempConfig, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { get, rawExchange, testAgent } from './http.js';

async function countBy(n: number, concurrency: number, call: () => Promise<string>): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++;
        const key = await call();
        counts[key] = (counts[key] ?? 0) + 1;
      }
    }),
  );
  return counts;
}

describe('routing, splits, subsets and balancers', () => {
  const procs = new Processes();
  const agent = testAgent();
  const servers: TestUpstream[] = [];
  let sidecar: SpawnedSidecar;
  let slowRelease: (() => void)[] = [];
  let slowReleased = false;

  beforeAll(async () => {
    const named = async (name: string) => {
      const s = await startUpstream(echoHandler(name));
      servers.push(s);
      return s;
    };
    const [v1, v2, v3, blue, rr1, rr2, rr3, fast] = await Promise.all(['v1', 'v2', 'v3', 'blue', 'rr1', 'rr2', 'rr3', 'fast'].map(named));
    const slow = await startUpstream((req, res) => {
      // Holds every request until the test lets go.
      if (slowReleased) echoHandler('slow')(req, res);
      else slowRelease.push(() => echoHandler('slow')(req, res));
    });
    servers.push(slow);
    const ep = (s: TestUpstream, labels: Record<string, string>) => ({ address: '127.0.0.1', port: s.port, labels });
    const snapshot: SnapshotInput = {
      version: 'r1',
      services: {
        shop: {
          lb: 'round-robin',
          subsets: { stable: { track: 'stable' } },
          endpoints: [ep(v1!, { version: 'v1', track: 'stable' }), ep(v2!, { version: 'v2' }), ep(v3!, { version: 'v3' }), ep(blue!, { version: 'blue' })],
        },
        rr: { lb: 'round-robin', endpoints: [ep(rr1!, {}), ep(rr2!, {}), ep(rr3!, {})] },
        lr: { lb: 'least-request', timeout: '5s', retries: { attempts: 0 }, endpoints: [ep(fast!, {}), ep(slow, {})] },
      },
      routes: {
        shop: [
          { name: 'canary-header', match: { pathPrefix: '/', headers: { 'x-canary': 'true' } }, split: { v3: 100 } },
          { name: 'exact', match: { path: '/exact' }, split: { blue: 100 } },
          { name: 'regex', match: { pathRegex: '/items/[0-9]+' }, split: { stable: 100 } },
          { name: 'post-only', match: { pathPrefix: '/orders', method: 'POST' }, split: { v3: 100 } },
          { name: 'prefix-header-regex', match: { pathPrefix: '/beta', headers: { 'x-user': { regex: 'u[0-9]+' }, 'x-debug': { present: true } } }, split: { blue: 100 } },
          { name: 'fault', match: { pathPrefix: '/fault' }, split: { v1: 100 }, fault: { abort: { percent: 100, status: 418 } } },
          { name: 'mirror', match: { pathPrefix: '/mirror' }, split: { v1: 100 }, mirror: { subset: 'v3', percent: 100 } },
          { name: 'by-constructor', match: { pathPrefix: '/proto', headers: { constructor: 'x' } }, split: { blue: 100 } },
          { name: 'by-host', match: { pathPrefix: '/by-host', headers: { host: { prefix: 'shop.service' } } }, split: { blue: 100 } },
          { name: 'polynomial', match: { pathRegex: '/poly.*a.*a.*a.*b' }, split: { blue: 100 } },
          { name: 'weighted', match: { pathPrefix: '/' }, split: { v1: 90, v2: 10 } },
        ],
      },
    };
    sidecar = await procs.sidecar({ service: 'client', appPort: v1!.port, config: writeTempConfig(snapshot, tempDir()) });
  });

  afterAll(async () => {
    await procs.killAll();
    if (!slowReleased) for (const release of slowRelease) release();
    await agent.close();
    await Promise.all(servers.map((s) => s.close()));
  });

  const who = async (path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<string> => {
    const res = await get(agent, `${sidecar.outboundUrl}${path}`, { host: 'shop', ...headers }, method);
    expect(res.status, res.text).toBe(200);
    return String(res.headers['x-upstream']);
  };

  it('matches rules by header, exact path, regex, method and prefix, first match winning', async () => {
    expect(await who('/anything', { 'x-canary': 'true' })).toBe('v3');
    expect(await who('/exact', { 'x-canary': 'true' })).toBe('v3');
    expect(await who('/exact')).toBe('blue');
    expect(await who('/items/42')).toBe('v1');
    expect(await who('/orders/1', {}, 'POST')).toBe('v3');
    expect(await who('/beta', { 'x-user': 'u7', 'x-debug': '' })).toBe('blue');
    // Near misses fall through to the weighted catch-all (v1 or v2).
    expect(['v1', 'v2']).toContain(await who('/exact/more'));
    expect(['v1', 'v2']).toContain(await who('/items/42x'));
    expect(['v1', 'v2']).toContain(await who('/beta', { 'x-user': 'admin', 'x-debug': '' }));
    // A header named as a member of Object.prototype is matched as any other.
    expect(await who('/proto', { constructor: 'x' })).toBe('blue');
    expect(['v1', 'v2']).toContain(await who('/proto'));
  });

  it('matches a host check on the authority the request is forwarded with, over HTTP/1.1, absolute-form and HTTP/2 alike', async () => {
    const h1 = async (target: string, host: string) => {
      const answer = await rawExchange(sidecar.outboundPort, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`, /\r\n\r\n/, 5000);
      return /x-upstream: (\w+)\r\n/.exec(answer)?.[1];
    };
    expect(await h1('/by-host', 'shop.service.consul')).toBe('blue');
    // Absolute-form: the target's authority is the Host sent on, so it is the one matched.
    expect(await h1('http://shop.service.consul/by-host', 'shop')).toBe('blue');
    expect(['v1', 'v2']).toContain(await h1('http://shop/by-host', 'shop.service.consul'));
    // HTTP/2 has :authority and no host header.
    const session = connect(`http://127.0.0.1:${sidecar.outboundPort}`);
    // Stream events say whether a request failed; a reset of the connection after the answers must not be an uncaught exception.
    session.on('error', () => {});
    try {
      const h2 = (authority: string) => new Promise<string>((resolve, reject) => {
        const stream = session.request({ ':path': '/by-host', ':authority': authority });
        stream.on('response', (headers) => resolve(String(headers['x-upstream'])));
        stream.on('error', reject);
        stream.resume();
      });
      expect(await h2('shop.service.consul')).toBe('blue');
      expect(['v1', 'v2']).toContain(await h2('shop'));
    } finally {
      session.close();
    }
  });

  it('answers a crafted path against a regex that backtracks polynomially at once (common/routing/route-regex.ts)', async () => {
    // Without the linear-time fallback this one request would hold the sidecar for hours.
    const crafted = `/poly${'a'.repeat(8000)}`;
    const answer = await rawExchange(sidecar.outboundPort, `GET ${crafted} HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n`, /\r\n\r\n/, 5000);
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer).toMatch(/x-upstream: v[12]\r\n/);
    expect(await who('/polyaaab')).toBe('blue');
  });

  it('runs the fault and mirror stages of the rules that have them', async () => {
    const fault = await get(agent, `${sidecar.outboundUrl}/fault`, { host: 'shop' });
    expect(fault.status).toBe(418);
    expect(fault.headers['x-skein-reason']).toBe('fault-injected');
    const v3 = servers[2]!;
    expect(await who('/mirror/1')).toBe('v1');
    await waitUntil(() => v3.requests.some((r) => r.url === '/mirror/1' && r.headers['x-skein-mirror'] === '1'), { what: 'the mirrored copy on v3' });
  });

  it('splits 90/10 within ±2.5 points over 2000 requests', async () => {
    const counts = await countBy(2000, 20, () => who('/split'));
    expect((counts.v1 ?? 0) + (counts.v2 ?? 0)).toBe(2000);
    expect(Math.abs((counts.v2 ?? 0) / 2000 - 0.1)).toBeLessThanOrEqual(0.025);
  }, 120_000);

  it('selects declared subsets by label and undeclared ones by version label', async () => {
    // `stable` is declared (track=stable → v1); `blue` and `v3` are not declared.
    expect(await who('/items/7')).toBe('v1');
    expect(await who('/exact')).toBe('blue');
    expect(await who('/', { 'x-canary': 'true' })).toBe('v3');
  });

  it('round-robin spreads requests evenly', async () => {
    const counts = await countBy(300, 6, async () => {
      const res = await get(agent, `${sidecar.outboundUrl}/rr`, { host: 'rr' });
      return String(res.headers['x-upstream']);
    });
    expect(counts).toEqual({ rr1: 100, rr2: 100, rr3: 100 });
  });

  it('least-request sends new requests to the idle endpoint rather than the slow one', async () => {
    // Occupy the slow endpoint: requests that land there stay in flight until released.
    const background: Promise<unknown>[] = [];
    await waitUntil(
      () => {
        if (slowRelease.length < 2) background.push(get(agent, `${sidecar.outboundUrl}/hold`, { host: 'lr' }));
        return slowRelease.length >= 2;
      },
      { what: 'two requests held by the slow endpoint' },
    );
    const counts = await countBy(40, 1, async () => String((await get(agent, `${sidecar.outboundUrl}/lr`, { host: 'lr' })).headers['x-upstream']));
    slowReleased = true;
    for (const release of slowRelease) release();
    await Promise.all(background);
    expect(counts).toEqual({ fast: 40 });
  });
});
