/**
 * The catalog against a fake Consul (a plain HTTP server answering as the test needs): names
 * that are not service names are skipped and warned about once, and a malformed answer is
 * an error of that sync (logged, the last good state kept), never an exception; a change
 * neither blocking query shows is read by the sweep, which waits while Consul is away.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { waitUntil } from '../../test/support/wait.js';
import { connectConsul, type ConsulConnection } from '../../common/consul/client.js';
import { ConsulCatalog, instancesOf, type ConsulCatalogOptions } from './consul-catalog.js';

interface FakeConsul {
  readonly url: string;
  /** What each path answers now (JSON-encoded), and its index; a blocking read with the same index waits 100 ms, then answers the same. */
  answers: Map<string, { body: unknown; index: number }>;
  /** While set, every request is answered 500, as an agent that is not serving. */
  down: boolean;
  /** Paths answered 500 even while `down` is not set. */
  readonly failing: Set<string>;
  /** The path of every request, in arrival order. */
  readonly requests: string[];
  close(): Promise<void>;
}

/**
 * `/v1/health/state/any` as Consul derives it from the health answers: each check of each
 * entry, modified at its answer's index, so setting a health answer with a new index is a
 * change of its checks, as a check that changes status is in Consul. Its own index moves on
 * every change of that list (the health answers' indexes may go back, as after a restart).
 */
function checksList(): (answers: Map<string, { body: unknown; index: number }>) => { body: unknown; index: number } {
  let last = '';
  let index = 1;
  return (answers) => {
    const checks: unknown[] = [];
    for (const [path, answer] of answers) {
      const service = /^\/v1\/health\/service\/(.+)$/.exec(path)?.[1];
      if (service === undefined) continue;
      const entries = Array.isArray(answer.body) ? (answer.body as { Service?: { ID?: string }; Checks?: unknown[] }[]) : [];
      for (const e of entries) {
        for (const [i] of (e.Checks ?? []).entries()) checks.push({ Node: 'node', CheckID: `${e.Service?.ID}:${i}`, ServiceName: service, ModifyIndex: answer.index });
      }
    }
    if (JSON.stringify(checks) !== last) index++;
    last = JSON.stringify(checks);
    return { body: checks, index };
  };
}

async function fakeConsul(): Promise<FakeConsul> {
  const answers = new Map<string, { body: unknown; index: number }>();
  const checksOf = checksList();
  let down = false;
  const failing = new Set<string>();
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    requests.push(url.pathname);
    if (down || failing.has(url.pathname)) return void res.writeHead(500).end('agent down');
    const answer = url.pathname === '/v1/health/state/any' ? checksOf(answers) : answers.get(url.pathname) ?? { body: [], index: 1 };
    const send = (): void => void res.writeHead(200, { 'content-type': 'application/json', 'x-consul-index': String(answer.index) }).end(JSON.stringify(answer.body));
    if (url.searchParams.get('index') === String(answer.index)) setTimeout(send, 100);
    else send();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    answers,
    failing,
    requests,
    get down() {
      return down;
    },
    set down(value: boolean) {
      down = value;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function recordingLogger() {
  const lines: { level: number; msg: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as { level: number; msg: string });
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

const entry = (id: string, port: number) => ({ Node: { Address: '127.0.0.1' }, Service: { ID: id, Port: port, Tags: ['v1'], Meta: { version: 'v1' } }, Checks: [{ Status: 'passing' }] });

describe('ConsulCatalog against a fake Consul', () => {
  let consul: FakeConsul | undefined;
  let connection: ConsulConnection | undefined;
  let catalog: ConsulCatalog | undefined;

  /**
   * A catalog with `options` on a fresh fake Consul that lists `services`, each with one
   * passing instance (`<name>-1` on its port), synced; its log lines recorded.
   */
  async function syncedCatalog(services: Record<string, number>, options: ConsulCatalogOptions): Promise<{ fake: FakeConsul; synced: ConsulCatalog; lines: { level: number; msg: string }[] }> {
    consul = await fakeConsul();
    consul.answers.set('/v1/catalog/services', { body: Object.fromEntries(Object.keys(services).map((name) => [name, []])), index: 5 });
    for (const [name, port] of Object.entries(services)) consul.answers.set(`/v1/health/service/${name}`, { body: [entry(`${name}-1`, port)], index: 7 });
    connection = connectConsul(consul.url);
    const { logger, lines } = recordingLogger();
    catalog = new ConsulCatalog(connection, logger, options);
    await catalog.synced(5_000);
    return { fake: consul, synced: catalog, lines };
  }

  afterEach(async () => {
    await catalog?.close();
    connection?.close();
    await consul?.close();
  });

  it('skips catalog names that are not service names, warning once per name, not per sync', async () => {
    consul = await fakeConsul();
    consul.answers.set('/v1/catalog/services', { body: { consul: [], Redis_Cache: [], web: [] }, index: 5 });
    consul.answers.set('/v1/health/service/web', { body: [entry('web-1', 8001)], index: 7 });
    consul.answers.set('/v1/health/service/Redis_Cache', { body: [entry('redis-1', 6379)], index: 7 });
    connection = connectConsul(consul.url);
    const { logger, lines } = recordingLogger();
    catalog = new ConsulCatalog(connection, logger);
    await catalog.synced(5_000);
    expect(catalog.instances().map((i) => i.service)).toEqual(['web']);
    // More syncs of the same list (the index moves): still one warning.
    consul.answers.set('/v1/catalog/services', { body: { Redis_Cache: [], web: [], 'x.y': [] }, index: 6 });
    await waitUntil(() => lines.some((l) => l.msg.includes('"x.y"')), { what: 'the next sync' });
    for (const index of [8, 9]) {
      consul.answers.set('/v1/catalog/services', { body: { Redis_Cache: [], web: [], 'x.y': [] }, index });
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const warnings = lines.filter((l) => l.level === 40).map((l) => l.msg);
    expect(warnings.filter((m) => m.includes('"Redis_Cache"'))).toHaveLength(1);
    expect(warnings.filter((m) => m.includes('"x.y"'))).toHaveLength(1);
    expect(warnings[0]).toContain('not a valid Skein service name');
    expect(catalog.instances().map((i) => i.service)).toEqual(['web']);
  });

  it('a malformed health or service-list answer is an error of that sync: logged, the last good state kept, no crash', async () => {
    consul = await fakeConsul();
    consul.answers.set('/v1/catalog/services', { body: { web: [] }, index: 5 });
    consul.answers.set('/v1/health/service/web', { body: [entry('web-1', 8001)], index: 7 });
    connection = connectConsul(consul.url);
    const { logger, lines } = recordingLogger();
    catalog = new ConsulCatalog(connection, logger);
    await catalog.synced(5_000);
    expect(catalog.instances().map((i) => i.id)).toEqual(['web-1']);

    // A body that is not an array (this crashed the control plane: entries.map is not a function).
    consul.answers.set('/v1/health/service/web', { body: { error: 'not a list' }, index: 8 });
    await waitUntil(() => lines.some((l) => l.level === 50 && l.msg.includes('/v1/health/service/web is malformed')), { what: 'the error log' });
    expect(catalog.instances().map((i) => i.id)).toEqual(['web-1']);
    // Entries without a Service.
    consul.answers.set('/v1/health/service/web', { body: [{ Node: {} }], index: 9 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(catalog.instances().map((i) => i.id)).toEqual(['web-1']);
    // A service list that is not an object.
    consul.answers.set('/v1/catalog/services', { body: ['web'], index: 6 });
    await waitUntil(() => lines.some((l) => l.level === 50 && l.msg.includes('/v1/catalog/services is malformed')), { what: 'the error log for the list' });
    expect(catalog.instances().map((i) => i.id)).toEqual(['web-1']);

    // Good answers again are taken.
    consul.answers.set('/v1/catalog/services', { body: { web: [] }, index: 10 });
    consul.answers.set('/v1/health/service/web', { body: [entry('web-1', 8001), entry('web-2', 8002)], index: 11 });
    await waitUntil(() => catalog!.instances().length === 2, { what: 'the good answer after the malformed ones', timeoutMs: 10_000 });
  });

  it('an instance whose address or port sidecars would refuse is skipped alone, warned about once per instance', async () => {
    consul = await fakeConsul();
    const at = (id: string, address: string, port: number) => ({ ...entry(id, port), Service: { ...entry(id, port).Service, Address: address } });
    const bad = [at('scheme', 'http://10.0.0.5', 8080), at('big', '127.0.0.1', 70000)];
    consul.answers.set('/v1/catalog/services', { body: { legacy: [] }, index: 5 });
    consul.answers.set('/v1/health/service/legacy', { body: [...bad, entry('good-1', 8001)], index: 7 });
    connection = connectConsul(consul.url);
    const { logger, lines } = recordingLogger();
    catalog = new ConsulCatalog(connection, logger);
    await catalog.synced(5_000);
    expect(catalog.instances().map((i) => i.id)).toEqual(['good-1']);
    // Later answers still carrying them (each with one more good instance, to see them read): no new warning.
    for (const [n, index] of [[2, 8], [3, 9]] as const) {
      consul.answers.set('/v1/health/service/legacy', { body: [...bad, ...Array.from({ length: n }, (_, i) => entry(`good-${i + 1}`, 8001 + i))], index });
      await waitUntil(() => catalog!.instances().length === n, { what: `answer ${index}` });
    }
    const warnings = lines.filter((l) => l.level === 40).map((l) => l.msg);
    expect(warnings).toHaveLength(2);
    expect(warnings.find((m) => m.includes('"scheme"'))).toContain('address: must be an IP address or a host name, not "http://10.0.0.5"');
    expect(warnings.find((m) => m.includes('"big"'))).toContain('port: ');
  });

  it('after an outage, a service Consul no longer lists or lists without a passing instance is kept for the recovery hold', async () => {
    const { fake, synced, lines } = await syncedCatalog({ web: 8001, api: 9001 }, { recoveryHoldMs: 60_000 });
    expect(synced.instances().map((i) => i.id)).toEqual(['api-1', 'web-1']);

    // An empty answer with no outage before it is news.
    fake.answers.set('/v1/health/service/api', { body: [], index: 8 });
    await waitUntil(() => synced.instances().length === 1, { what: 'api emptied' });
    // The agent restarts: web is not listed at first, then listed with its check still critical.
    fake.down = true;
    await waitUntil(() => lines.some((l) => l.level === 50 && l.msg.includes('watching the service list in Consul failed')), { what: 'the outage seen' });
    fake.answers.set('/v1/catalog/services', { body: {}, index: 2 });
    fake.answers.set('/v1/health/service/web', { body: [], index: 2 });
    fake.down = false;
    await waitUntil(() => lines.some((l) => l.msg.includes('no longer lists web')), { what: 'the vanished service kept' });
    fake.answers.set('/v1/catalog/services', { body: { web: [] }, index: 3 });
    fake.answers.set('/v1/health/service/web', { body: [{ ...entry('web-1', 8001), Checks: [{ Status: 'critical' }] }], index: 3 });
    await waitUntil(() => lines.some((l) => l.msg.includes('lists no passing or warning instance of web')), { what: 'the critical answer held' });
    expect(synced.instances().map((i) => [i.id, i.health])).toEqual([['web-1', 'healthy']]);
    // Once it passes, the answer is taken as any other.
    fake.answers.set('/v1/health/service/web', { body: [entry('web-1', 8002)], index: 4 });
    await waitUntil(() => synced.instances()[0]?.port === 8002, { what: 'the passing instance' });
  });

  it('an outage only the services list saw still holds what the health checks query reads next (it never failed, so its answer ends the outage)', async () => {
    const { fake, synced, lines } = await syncedCatalog({ web: 8001 }, { recoveryHoldMs: 60_000 });
    fake.failing.add('/v1/catalog/services');
    await waitUntil(() => lines.some((l) => l.level === 50 && l.msg.includes('watching the service list in Consul failed')), { what: 'the list failing' });
    expect(lines.some((l) => l.msg.includes('the health checks'))).toBe(false);
    // web's check goes: the checks query answers at once, and web is read again, empty.
    fake.answers.set('/v1/health/service/web', { body: [], index: 8 });
    await waitUntil(() => lines.some((l) => l.msg.includes('lists no passing or warning instance of web')), { what: 'the empty answer held' });
    expect(synced.instances().map((i) => i.id)).toEqual(['web-1']);
  });

  it('after an outage, a service listed with instances in warning only is applied at once: they receive traffic', async () => {
    const { fake, synced, lines } = await syncedCatalog({ web: 8001 }, { recoveryHoldMs: 60_000 });
    fake.down = true;
    await waitUntil(() => lines.filter((l) => l.level === 50).length >= 2, { what: 'the outage seen by both blocking queries' });
    fake.answers.set('/v1/health/service/web', { body: [{ ...entry('web-1', 8002), Checks: [{ Status: 'passing' }, { Status: 'warning' }] }], index: 2 });
    fake.down = false;
    await waitUntil(() => synced.instances()[0]?.port === 8002, { what: 'the instance in warning applied within the hold' });
    expect(synced.instances().map((i) => [i.id, i.health])).toEqual([['web-1', 'warning']]);
    expect(lines.some((l) => l.msg.includes('lists no passing or warning instance'))).toBe(false);
  });

  it('what the recovery hold kept is applied when the hold ends, though Consul answers nothing new (a service that stays gone, an instance that stays critical)', async () => {
    const { fake, synced, lines } = await syncedCatalog({ web: 8001, api: 9001 }, { recoveryHoldMs: 1_000 });
    expect(synced.instances().map((i) => i.id)).toEqual(['api-1', 'web-1']);

    // The agent restarts; web's sidecar is gone for good, api's registered again but its check stays critical.
    fake.down = true;
    await waitUntil(() => lines.filter((l) => l.level === 50).length >= 2, { what: 'the outage seen by both blocking queries' });
    fake.answers.set('/v1/catalog/services', { body: { api: [] }, index: 2 });
    fake.answers.set('/v1/health/service/web', { body: [], index: 2 });
    fake.answers.set('/v1/health/service/api', { body: [{ ...entry('api-1', 9001), Checks: [{ Status: 'critical' }] }], index: 2 });
    fake.down = false;
    // Kept: web by the list's hold or its own (whichever query answered first), api by its own.
    const kept = (what: string) => lines.some((l) => l.msg.includes(what));
    await waitUntil(() => (kept('no longer lists web') || kept('lists no passing or warning instance of web')) && kept('lists no passing or warning instance of api'), { what: 'both kept' });
    // The index stays 2 from now on: only the hold's end can apply these answers.
    await waitUntil(() => JSON.stringify(synced.instances().map((i) => [i.id, i.health])) === JSON.stringify([['api-1', 'critical']]), {
      timeoutMs: 5_000,
      what: 'web dropped and api critical once the 1 s hold is over',
    });
  });

  it('an answer held after an outage is not applied at the hold\'s end while Consul is away again', async () => {
    // 3 s: the query, between two 1 s blocking reads of this fake, sees the new outage well within it.
    const { fake, synced, lines } = await syncedCatalog({ web: 8001 }, { recoveryHoldMs: 3_000 });

    fake.down = true;
    await waitUntil(() => lines.filter((l) => l.level === 50).length >= 2, { what: 'the outage seen by both blocking queries' });
    fake.answers.set('/v1/health/service/web', { body: [], index: 2 });
    fake.down = false;
    await waitUntil(() => lines.some((l) => l.msg.includes('lists no passing or warning instance of web')), { what: 'the empty answer held: ' + JSON.stringify(lines) + JSON.stringify(synced.instances()) });
    // Away again before the hold ends, and past its end: the last known instance stays.
    fake.down = true;
    const heldAt = Date.now();
    await waitUntil(() => lines.filter((l) => l.level === 50).length >= 3, { what: 'the new outage seen' });
    await waitUntil(() => Date.now() > heldAt + 4_000, { timeoutMs: 6_000, what: 'past the end of the hold' });
    expect(synced.instances().map((i) => [i.id, i.health])).toEqual([['web-1', 'healthy']]);
  });

  /** An answer for web on `port` at the index it had: neither list moves, as for a re-registration Consul's lists do not show. */
  const unseenMove = (fake: FakeConsul, port: number) => fake.answers.set('/v1/health/service/web', { body: [entry('web-1', port)], index: 7 });

  it('reads a change neither list shows within the sweep period', async () => {
    const { fake, synced } = await syncedCatalog({ web: 8001, api: 9001 }, { sweepMs: 400 });
    const moved = Date.now();
    unseenMove(fake, 8002);
    await waitUntil(() => synced.instances().find((i) => i.id === 'web-1')?.port === 8002, { timeoutMs: 2_000, what: 'web on its new port, read by the sweep' });
    expect(Date.now() - moved).toBeLessThan(400 + 500);
  });

  it('reads each service within the sweep period though the catalog shrinks meanwhile', async () => {
    // Twenty services, one sweep read every 300 ms, asked for in the list's order.
    const names = Array.from({ length: 20 }, (_, i) => `s${String(i).padStart(2, '0')}`);
    const { fake, synced } = await syncedCatalog(Object.fromEntries(names.map((name, i) => [name, 8001 + i])), { sweepMs: 6_000 });
    const syncedAt = Date.now();
    const from = fake.requests.length;
    // s19, the last to come round, moves unseen.
    fake.answers.set('/v1/health/service/s19', { body: [entry('s19-1', 9999)], index: 7 });
    await waitUntil(() => fake.requests.slice(from).filter((path) => path.startsWith('/v1/health/service/')).length >= 10, { timeoutMs: 6_000, what: 'ten sweep reads' });
    // The ten the sweep read go: ten turns are left for s10 to s19, paced 600 ms apart, so
    // they alone would take s19 past its 6 s.
    fake.answers.set('/v1/catalog/services', { body: Object.fromEntries(names.slice(10).map((name) => [name, []])), index: 6 });
    await waitUntil(() => synced.instances().find((i) => i.id === 's19-1')?.port === 9999, { timeoutMs: 12_000, what: 's19 on its new port' });
    expect(Date.now() - syncedAt).toBeLessThan(6_000 + 1_200);
  });

  it('waits while the services list fails, rather than have every service read fail and retry on its own, and goes on once Consul answers', async () => {
    // Five services, one sweep read every 500 ms.
    const ports = Object.fromEntries(['web', 'a', 'b', 'c', 'd'].map((name, i) => [name, 8001 + i]));
    const { fake, synced, lines } = await syncedCatalog(ports, { sweepMs: 2_500 });
    const downFrom = fake.requests.length;
    const tried = () => new Set(fake.requests.slice(downFrom).filter((path) => path.startsWith('/v1/health/service/')));
    fake.down = true;
    // The list's query fails on its next request (this fake answers it once a second): until
    // then the sweep goes on, and what it asked for fails and retries as any read.
    await waitUntil(() => lines.some((l) => l.level === 50 && l.msg.includes('watching the service list')), { what: 'the services list failing' });
    const before = tried();
    const seenAt = Date.now();
    // 2 s: four of the sweep's turns, which would have asked for the others.
    await waitUntil(() => Date.now() > seenAt + 2_000, { timeoutMs: 3_000, what: '2 s of the outage' });
    expect([...tried()].filter((path) => !before.has(path))).toEqual([]);

    unseenMove(fake, 8002);
    fake.down = false;
    await waitUntil(() => synced.instances().find((i) => i.id === 'web-1')?.port === 8002, { timeoutMs: 10_000, what: 'the sweep going on after the outage' });
  });
});

describe('instancesOf', () => {
  it('gives each instance the worst of its checks: warning stays an endpoint, critical and maintenance do not', () => {
    const withChecks = (id: string, port: number, ...statuses: string[]) => ({ ...entry(id, port), Checks: statuses.map((Status) => ({ Status })) });
    const instances = instancesOf('web', [
      withChecks('a', 8001, 'passing', 'passing'),
      withChecks('b', 8002, 'passing', 'warning'),
      withChecks('c', 8003, 'warning', 'critical'),
      // Maintenance mode: Consul adds a critical `_service_maintenance:<id>` check.
      withChecks('d', 8004, 'passing', 'critical'),
    ]);
    expect(instances.map((i) => [i.id, i.health])).toEqual([['a', 'healthy'], ['b', 'warning'], ['c', 'critical'], ['d', 'critical']]);
  });
});
