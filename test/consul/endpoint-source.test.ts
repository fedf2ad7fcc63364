/**
 * The sidecar's Consul endpoint source in process, against a real agent, counting the
 * requests it sends: no destination, no query; one blocking query per destination, shared by
 * its watchers and parked on Consul between changes (no spinning); stopped when the last
 * watcher leaves. Labels are the instance's meta plus `tag:<tag>`. Instances in warning are
 * endpoints, critical ones not (nor warning ones for a watcher with onlyPassing). An instance
 * registered without a port, or with one above 65535 or a URL for an address, is skipped, the
 * others kept.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Endpoint } from '../../common/config/schema.js';
import { blockingQueryStats } from '../../common/consul/blocking-query.js';
import { connectConsul, type ConsulConnection } from '../../common/consul/client.js';
import { createLogger } from '../../common/log.js';
import { ConsulEndpointSource, endpointsOf, healthEntries, MalformedConsulAnswer } from '../../sidecar/discovery/consul.js';
import { startConsul, type ConsulAgent } from '../support/consul.js';
import { waitUntil } from '../support/index.js';

describe('ConsulEndpointSource against a real agent', { timeout: 60_000 }, () => {
  let consul: ConsulAgent;
  let connection: ConsulConnection;

  beforeAll(async () => {
    consul = await startConsul();
    connection = connectConsul(consul.url, {});
  }, 60_000);
  afterAll(async () => {
    connection?.close();
    await consul?.stop();
  });

  const register = (id: string, port: number, version: string) =>
    consul.put('/agent/service/register', { ID: id, Name: 'catalog', Address: '127.0.0.1', Port: port, Tags: [version, 'canary'], Meta: { version, protocol: 'http' } });
  /** A source on an emptied agent whose warnings are kept, and the endpoint sets it hands a watcher. */
  const warnedSource = async (): Promise<{ lines: string[]; source: ConsulEndpointSource; sets: (readonly Endpoint[])[] }> => {
    await consul.reset();
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
    return { lines, source: new ConsulEndpointSource(connection, logger), sets: [] };
  };
  /** Lets requests that are due go out, so a count taken after it is settled. */
  const quiet = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it('queries on demand, shares one parked query between watchers, and stops with the last one', async () => {
    await register('catalog-1', 18001, 'v1');
    const source = new ConsulEndpointSource(connection, createLogger('endpoint-source-test', 'silent'));
    const start = blockingQueryStats.requests;
    await quiet(300);
    expect(blockingQueryStats.requests, 'no destination, no query').toBe(start);

    const first: (readonly Endpoint[])[] = [];
    const second: (readonly Endpoint[])[] = [];
    const stopFirst = source.watch('catalog', (e) => first.push(e));
    await waitUntil(() => first.length === 1, { what: 'the first set' });
    expect(first[0]).toEqual([{ address: '127.0.0.1', port: 18001, labels: { version: 'v1', protocol: 'http', 'tag:v1': 'true', 'tag:canary': 'true' } }]);

    // The second watcher gets the known set at once, from the same query.
    const stopSecond = source.watch('catalog', (e) => second.push(e));
    expect(second).toEqual([first[0]]);
    // Parked on Consul (wait 60 s): over 1.5 s with nothing changing, at most the one request in flight.
    const parked = blockingQueryStats.requests;
    await quiet(1_500);
    expect(blockingQueryStats.requests - parked).toBe(0);
    expect(parked - start).toBeLessThanOrEqual(2);

    // A change wakes the one query; both watchers hear it.
    await register('catalog-2', 18002, 'v2');
    await waitUntil(() => first.length === 2 && second.length === 2, { what: 'both watchers to see catalog-2' });
    expect(first[1]!.map((e) => e.port)).toEqual([18001, 18002]);
    expect(second[1]).toEqual(first[1]);

    stopFirst();
    stopSecond();
    await quiet(300);
    const stopped = blockingQueryStats.requests;
    await register('catalog-3', 18003, 'v3');
    await quiet(1_500);
    expect(blockingQueryStats.requests, 'no query once nobody watches').toBe(stopped);
    expect(first).toHaveLength(2);
    await source.close();
  });

  it('an empty answer kept for the recovery hold after an agent restart is applied when the hold ends, with nothing changing in Consul', async () => {
    await consul.reset();
    await register('catalog-1', 18001, 'v1');
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    // Blocking queries of 2 s: the agent answers them with the same index while nothing changes.
    const source = new ConsulEndpointSource(connection, logger, { recoveryHoldMs: 1_000, waitMs: 2_000, backoffMaxMs: 300 });
    const sets: (readonly Endpoint[])[] = [];
    const stop = source.watch('catalog', (e) => sets.push(e));
    try {
      await waitUntil(() => sets.length === 1, { what: 'the first set' });
      // The restarted agent lost catalog-1, whose sidecar is gone for good: nobody registers it again.
      await consul.restart();
      await waitUntil(() => lines.some((l) => l.includes('lists no passing or warning instance of catalog')), { what: 'the empty answer held' });
      expect(sets).toHaveLength(1);
      await waitUntil(() => sets.at(-1)?.length === 0, { timeoutMs: 8_000, what: 'the empty set applied once the 1 s hold is over' });
      expect(sets).toHaveLength(2);
    } finally {
      stop();
      await source.close();
    }
  });

  it('an instance registered without a port is skipped, with one warning, and the others are followed', async () => {
    const { lines, source, sets } = await warnedSource();
    await register('catalog-1', 18001, 'v1');
    await consul.put('/agent/service/register', { ID: 'catalog-0', Name: 'catalog', Address: '127.0.0.1' });
    await register('catalog-2', 18002, 'v2');
    const stop = source.watch('catalog', (e) => sets.push(e));
    await waitUntil(() => sets.at(-1)?.length === 2, { what: 'catalog-1 and catalog-2' });
    expect(sets.at(-1)!.map((e) => e.port)).toEqual([18001, 18002]);
    await consul.put('/agent/service/deregister/catalog-1');
    await waitUntil(() => sets.at(-1)?.length === 1, { what: 'catalog-1 to leave' });
    expect(sets.at(-1)!.map((e) => e.port)).toEqual([18002]);
    stop();
    await source.close();
    expect(lines.filter((l) => l.includes('"catalog-0"') && l.includes('without a port'))).toHaveLength(1);
  });

  it('an instance with a port above 65535 or a URL for an address is skipped, with one warning each however many answers list it', async () => {
    const { lines, source, sets } = await warnedSource();
    await register('catalog-1', 18001, 'v1');
    await consul.put('/agent/service/register', { ID: 'catalog-big', Name: 'catalog', Address: '127.0.0.1', Port: 70_000 });
    await consul.put('/agent/service/register', { ID: 'catalog-url', Name: 'catalog', Address: 'http://10.0.0.5', Port: 18009 });
    const stop = source.watch('catalog', (e) => sets.push(e));
    await waitUntil(() => sets.length === 1, { what: 'the first set' });
    expect(sets[0]!.map((e) => `${e.address}:${e.port}`)).toEqual(['127.0.0.1:18001']);
    // More answers listing the same bad instances: no more warnings.
    await register('catalog-2', 18002, 'v2');
    await waitUntil(() => sets.at(-1)?.length === 2, { what: 'catalog-2' });
    stop();
    await source.close();
    const warned = (id: string) => lines.filter((l) => l.includes(`"${id}"`) && l.includes('no connection can be made to'));
    expect(warned('catalog-big')).toHaveLength(1);
    expect(warned('catalog-url')).toHaveLength(1);
    expect(warned('catalog-big')[0]).toMatch(/port/);
  });
  it('lists instances in warning and leaves critical ones out; a watcher with onlyPassing leaves warning ones out too, on a query of its own', async () => {
    await consul.reset();
    const check = (id: string, status: string) => ({ CheckID: `${id}-ttl`, TTL: '10m', Status: status });
    for (const [id, port, status] of [['ok', 18101, 'passing'], ['warn', 18102, 'warning'], ['down', 18103, 'critical']] as const) {
      await consul.put('/agent/service/register', { ID: id, Name: 'catalog', Address: '127.0.0.1', Port: port, Check: check(id, status) });
    }
    const source = new ConsulEndpointSource(connection, createLogger('endpoint-source-test', 'silent'));
    const all: number[][] = [];
    const passing: number[][] = [];
    const stopAll = source.watch('catalog', (e) => all.push(e.map((x) => x.port)));
    const stopPassing = source.watch('catalog', (e) => passing.push(e.map((x) => x.port)), { onlyPassing: true });
    await waitUntil(() => all.length > 0 && passing.length > 0, { what: 'both sets' });
    expect([all.at(-1), passing.at(-1)]).toEqual([[18101, 18102], [18101]]);

    await consul.put('/agent/check/pass/warn-ttl');
    await waitUntil(() => JSON.stringify(passing.at(-1)) === JSON.stringify([18101, 18102]), { what: 'the instance back to passing in the onlyPassing set' });
    await consul.put('/agent/check/fail/ok-ttl');
    await waitUntil(() => JSON.stringify(all.at(-1)) === JSON.stringify([18102]) && JSON.stringify(passing.at(-1)) === JSON.stringify([18102]), { what: 'the failed instance out of both sets' });
    stopAll();
    stopPassing();
    await source.close();
  });
});

describe('endpointsOf', () => {
  const entry = (id: string, address: string, port: number, version: string, created = 1) => ({ Service: { ID: id, Address: address, Port: port, Meta: { version }, CreateIndex: created } });

  it('holds one endpoint per address and port (an old registration of a restarted sidecar beside its new one)', () => {
    const skipped: string[] = [];
    const endpoints = endpointsOf([entry('b', '10.0.0.2', 80, 'v1'), entry('old', '10.0.0.1', 80, 'v1'), entry('new', '10.0.0.1', 80, 'v1'), entry('bad', '10.0.0.1', 0, 'v1')], (id) => skipped.push(id));
    expect(endpoints.map((e) => `${e.address}:${e.port}`)).toEqual(['10.0.0.1:80', '10.0.0.2:80']);
    expect(skipped).toEqual(['bad']);
  });

  it("keeps the newest registration's labels for an address and port listed twice (restarted with a new version)", () => {
    for (const order of [[0, 1], [1, 0]]) {
      const both = [entry('old', '10.0.0.1', 80, 'v1', 10), entry('new', '10.0.0.1', 80, 'v2', 20)];
      expect(endpointsOf(order.map((i) => both[i]!)).map((e) => e.labels.version)).toEqual(['v2']);
    }
  });
});

describe('healthEntries', () => {
  const entry = (id: string, port?: number) => ({ Service: { ID: id, Address: '127.0.0.1', ...(port === undefined ? {} : { Port: port }) } });

  it('skips an entry without a port and keeps the rest; a body that is not a list stays malformed', () => {
    const skipped: string[] = [];
    expect(healthEntries('m', [entry('m1', 1), entry('m0'), entry('m2', 2)], (id) => skipped.push(id)).map((e) => e.Service.ID)).toEqual(['m1', 'm2']);
    expect(skipped).toEqual(['m0']);
    expect(healthEntries('m', null)).toEqual([]);
    expect(() => healthEntries('m', { m1: 1 })).toThrow(MalformedConsulAnswer);
    expect(() => healthEntries('m', [{ Service: { Port: 1 } }])).toThrow(MalformedConsulAnswer);
  });
});
