/**
 * `lb: ring-hash` through one real sidecar in plain mode (endpoints are test servers that say
 * who they are): requests with the same header, cookie or query value reach the same endpoint,
 * WebSocket upgrades go where the requests of their value go, a removed endpoint moves only its
 * own keys, a failing endpoint's requests are retried on one neighbour, the same for every
 * request of the key, and a mirror's copies go where its subset's requests of the value go.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSnapshot } from '../../common/config/parse.js';
import type { SnapshotInput } from '../../common/config/schema.js';
import { explainRequest } from '../../common/routing/index.js';
import { affinityOf } from '../../control-plane/admin-api/explain-routes.js';
import { echoHandler, Processes, startUpstream, tempDir, waitUntil, writeConfigFile, writeTempConfig, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { get, rawExchange, testAgent } from './http.js';

const USERS = Array.from({ length: 40 }, (_, i) => `user-${i}`);

describe('ring-hash balancing', () => {
  const procs = new Processes();
  const agent = testAgent();
  const servers: TestUpstream[] = [];
  let sidecar: SpawnedSidecar;
  let file: string;
  let failing = '';
  /** The mirror subset's endpoints, and per user the ones its copies reached. */
  const shadows: TestUpstream[] = [];
  const copiesOf = new Map<string, string[]>();

  const snapshot = (version: string, names: readonly string[]): SnapshotInput => {
    const endpoints = servers.filter((_, i) => names.includes(`s${i}`)).map((s) => ({ address: '127.0.0.1', port: s.port, labels: {} }));
    return {
      version,
      services: {
        byheader: { lb: 'ring-hash', hashOn: { header: 'x-user' }, retries: { attempts: 1, on: ['gateway-error'] }, endpoints },
        bycookie: { lb: 'ring-hash', hashOn: { cookie: 'sid' }, endpoints },
        byquery: { lb: 'ring-hash', hashOn: { query: 'user' }, endpoints },
        mirrored: {
          lb: 'ring-hash',
          hashOn: { header: 'x-user' },
          endpoints: [...endpoints.map((e) => ({ ...e, labels: { version: 'live' } })), ...shadows.map((s) => ({ address: '127.0.0.1', port: s.port, labels: { version: 'shadow' } }))],
        },
      },
      routes: { mirrored: [{ match: { pathPrefix: '/' }, split: { live: 100 }, mirror: { subset: 'shadow', percent: 100 } }] },
    };
  };
  const ALL = ['s0', 's1', 's2', 's3'];

  /** The endpoint name that answered a request of `service` with `headers`, asked through the sidecar. */
  const served = async (service: string, path: string, headers: Record<string, string> = {}): Promise<string> => {
    const r = await get(agent, `${sidecar.outboundUrl}${path}`, { host: service, ...headers });
    expect(r.status, r.text).toBe(200);
    return r.headers['x-upstream'] as string;
  };
  const owners = (ask: (user: string) => Promise<string>) => Promise.all(USERS.map(ask));

  beforeAll(async () => {
    for (let i = 0; i < 4; i++) {
      const name = `s${i}`;
      const ok = echoHandler(name);
      servers.push(await startUpstream((req, res) => (failing === name ? res.writeHead(503, { 'x-upstream': name }).end() : ok(req, res))));
    }
    for (let i = 0; i < 3; i++) {
      const name = `m${i}`;
      shadows.push(
        await startUpstream((req, res) => {
          const user = String(req.headers['x-user']);
          copiesOf.set(user, [...(copiesOf.get(user) ?? []), name]);
          res.end();
        }),
      );
    }
    file = writeTempConfig(snapshot('1', ALL), tempDir());
    sidecar = await procs.sidecar({ service: 'client', appPort: servers[0]!.port, config: file });
  });

  afterAll(async () => {
    await procs.killAll();
    await agent.close();
    await Promise.all([...servers, ...shadows].map((s) => s.close()));
  });

  it('sends every request of one header, cookie or query value to one endpoint, and spreads the values', async () => {
    const byHeader = await owners((u) => served('byheader', '/', { 'x-user': u }));
    expect(await owners((u) => served('byheader', '/again', { 'x-user': u }))).toEqual(byHeader);
    expect(new Set(byHeader).size).toBeGreaterThanOrEqual(3);
    // skein explain names the endpoint the sidecar chose, from the same snapshot.
    const parsed = parseSnapshot(snapshot('1', ALL));
    const explained = USERS.map((u) => {
      const headers = { 'x-user': u };
      const [endpoint] = affinityOf({ header: 'x-user' }, explainRequest(parsed, { service: 'byheader', method: 'GET', path: '/', headers }), headers, '/').endpoints;
      return `s${servers.findIndex((s) => endpoint!.endpoint === `127.0.0.1:${s.port}`)}`;
    });
    expect(explained).toEqual(byHeader);
    // The same ring and the same hash of the value, whatever carries it.
    expect(await owners((u) => served('bycookie', '/', { cookie: `theme=dark; sid=${u}` }))).toEqual(byHeader);
    expect(await owners((u) => served('byquery', `/items?user=${u}&page=2`))).toEqual(byHeader);
    // Without the value, requests are spread at random.
    const anonymous = new Set(await Promise.all(Array.from({ length: 40 }, () => served('byheader', '/'))));
    expect(anonymous.size).toBeGreaterThanOrEqual(3);
  });

  it("sends a mirror's copies of a value's requests to one endpoint of the mirror subset", async () => {
    // A round's copies are awaited before the next, so no more than a round's are in flight (the cap is 64).
    for (let round = 1; round <= 2; round++) {
      await owners((u) => served('mirrored', '/', { 'x-user': u }));
      await waitUntil(() => [...copiesOf.values()].reduce((n, c) => n + c.length, 0) === USERS.length * round, { what: `round ${round}'s copies received` });
    }
    for (const user of USERS) expect(new Set(copiesOf.get(user)), user).toHaveProperty('size', 1);
    expect(new Set(USERS.map((u) => copiesOf.get(u)![0])).size).toBeGreaterThanOrEqual(2);
  });

  it('sends a WebSocket upgrade where the requests of its value go', async () => {
    const byHeader = await owners((u) => served('byheader', '/', { 'x-user': u }));
    // The echo apps decline an upgrade with a plain 200 that says who they are.
    const upgraded = await owners(async (u) => {
      const answer = await rawExchange(sidecar.outboundPort, `GET /ws HTTP/1.1\r\nHost: byheader\r\nx-user: ${u}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\nSec-WebSocket-Version: 13\r\n\r\n`, /\}$/);
      return /x-upstream: (s\d)/i.exec(answer)?.[1] ?? answer;
    });
    expect(upgraded).toEqual(byHeader);
  });

  it("retries a failing endpoint's requests on one neighbour, the same for every request of the value", async () => {
    const before = await owners((u) => served('byheader', '/', { 'x-user': u }));
    failing = before[0]!;
    try {
      const during = await owners((u) => served('byheader', '/', { 'x-user': u }));
      expect(await owners((u) => served('byheader', '/', { 'x-user': u }))).toEqual(during);
      USERS.forEach((_, i) => {
        if (before[i] === failing) expect(during[i]).not.toBe(failing);
        else expect(during[i]).toBe(before[i]);
      });
    } finally {
      failing = '';
    }
  });

  it('moves only the values of an endpoint removed by a reload', async () => {
    const before = await owners((u) => served('byheader', '/', { 'x-user': u }));
    const removed = before[0]!;
    writeConfigFile(file, snapshot('2', ALL.filter((n) => n !== removed)));
    await waitUntil(async () => ((await (await fetch(`${sidecar.adminUrl}/config`)).json()) as { version: string }).version === '2', { what: 'version 2 applied' });
    const after = await owners((u) => served('byheader', '/', { 'x-user': u }));
    USERS.forEach((_, i) => {
      if (before[i] === removed) expect(after[i]).not.toBe(removed);
      else expect(after[i]).toBe(before[i]);
    });
  });
});
