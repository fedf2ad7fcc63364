import { describe, expect, it, vi } from 'vitest';
import { serviceName } from '../../common/config/schema.js';
import type { EdgeDelta, SpanRecord, TapRow } from '../../common/proto/telemetry.js';
import { quantile, Tally } from './golden.js';
import { NO_ROUTE, StatsAggregator } from './stats.js';
import { matchesTap, TapHub } from './tap.js';
import { TraceStore } from './traces.js';

const BOUNDS = [0.001, 0.01, 0.1, 1];

function delta(over: Partial<EdgeDelta>): EdgeDelta {
  return { direction: 'outbound', source: 'a', destination: 'b', subset: 'v1', classes: [0, 10, 0, 0, 0], grpcFailures: 0, buckets: [0, 10, 0, 0, 0], sumSeconds: 0.05, ...over };
}

describe('quantile', () => {
  it('interpolates inside the bucket holding the rank', () => {
    // 100 requests, all in (10 ms, 100 ms]: the median is halfway through that bucket.
    expect(quantile(0.5, [0, 0, 100, 0, 0], BOUNDS)).toBeCloseTo(0.055, 6);
    expect(quantile(0.99, [0, 0, 100, 0, 0], BOUNDS)).toBeCloseTo(0.0991, 6);
    // The +Inf bucket reports the largest finite bound.
    expect(quantile(0.99, [0, 0, 0, 0, 5], BOUNDS)).toBe(1);
    expect(quantile(0.5, [0, 0, 0, 0, 0], BOUNDS)).toBeNaN();
  });

  it('turns a tally into golden metrics', () => {
    const t = new Tally(5);
    t.add({ requests: 20, failures: 5, sumSeconds: 1, buckets: [0, 20, 0, 0, 0] });
    expect(t.golden(10, BOUNDS)).toMatchObject({ requests: 20, failures: 5, rps: 2, successRate: 0.75, latencyMs: { mean: 50 } });
    expect(new Tally(5).golden(10, BOUNDS)).toMatchObject({ requests: 0, successRate: null, latencyMs: null });
  });
});

describe('StatsAggregator', () => {
  const proxy = { id: 'p1', service: 'a', instanceId: 'a-1' };

  it("measures a canary step's window from the reports it took, however long it runs, where the 1 s slots keep a minute", () => {
    let now = 1_000_000;
    const agg = new StatsAggregator(() => now);
    const report = (edges: EdgeDelta[], fromSnapshot: string | undefined = '7') => agg.ingest(proxy, { bounds: BOUNDS, edges, breakers: [], ...(fromSnapshot === undefined ? {} : { fromSnapshot }) });
    report([delta({ subset: 'v2', classes: [0, 40, 0, 0, 0], buckets: [40, 0, 0, 0, 0] })]);
    const window = agg.openWindow('b', 'v2', '7', now + 1_200);
    // A slow canary: one request every 30 s for three minutes, every other one failing; v1 and
    // the inbound side report too, and count in neither.
    for (let i = 0; i < 6; i++) {
      now += 30_000;
      report([
        delta({ subset: 'v2', classes: i % 2 === 0 ? [0, 1, 0, 0, 0] : [0, 0, 0, 0, 1], buckets: [0, 0, 1, 0, 0] }),
        delta({ subset: 'v1', classes: [0, 9, 0, 0, 0], buckets: [9, 0, 0, 0, 0] }),
        delta({ direction: 'inbound', subset: 'v2', classes: [0, 5, 0, 0, 0], buckets: [5, 0, 0, 0, 0] }),
      ]);
    }
    const g = window.measure(180);
    expect(g).toMatchObject({ requests: 6, failures: 3, successRate: 0.5, rps: 0.033 });
    expect(g.latencyMs!.p99).toBeGreaterThan(10);
    window.close();
    report([delta({ subset: 'v2' })]);
    expect(window.measure(180).requests).toBe(6);
    // Seen inbound only when no caller reports: a subset its callers never named.
    const v3 = agg.openWindow('b', 'v3', '7', now);
    report([delta({ direction: 'inbound', subset: 'v3', classes: [0, 2, 0, 0, 0], buckets: [2, 0, 0, 0, 0] })]);
    expect(v3.measure(10)).toMatchObject({ requests: 2 });
  });

  it("takes into a step's window only reports whose interval began under its snapshot or a later one, and older sidecars' from when it says", () => {
    let now = 1_000_000;
    const agg = new StatsAggregator(() => now);
    const report = (fromSnapshot: string | undefined, requests: number) =>
      agg.ingest(proxy, { bounds: BOUNDS, edges: [delta({ subset: 'v2', classes: [0, requests, 0, 0, 0] })], breakers: [], ...(fromSnapshot === undefined ? {} : { fromSnapshot }) });
    const window = agg.openWindow('b', 'v2', '1795316593237', now + 1_200);
    // Routed partly by the snapshot before (it straddles the switch), by none yet, by something
    // that is no version: none of them counts.
    report('1795316593236', 1);
    report('', 2);
    report('x', 4);
    // An older sidecar's report, before a report's lag has passed: it may still be the step before's.
    report(undefined, 8);
    expect(window.measure(10).requests).toBe(0);
    report('1795316593237', 16);
    // A later snapshot (an endpoint joined, say) still carries the step's split.
    report('1795316593240', 32);
    now += 1_200;
    report(undefined, 64);
    expect(window.measure(10).requests).toBe(16 + 32 + 64);
  });

  it('sums 1 s slots into a 10 s and a 1 min window and forgets what fell out', () => {
    let now = 1_000_000;
    const agg = new StatsAggregator(() => now);
    agg.ingest(proxy, { bounds: BOUNDS, edges: [delta({ classes: [0, 8, 0, 0, 2], buckets: [0, 10, 0, 0, 0] })], breakers: [] });
    now += 20_000;
    agg.ingest(proxy, { bounds: BOUNDS, edges: [delta({ classes: [0, 5, 0, 0, 0], buckets: [0, 0, 5, 0, 0] })], breakers: [{ destination: 'b', subset: 'v1', state: 'open' }] });
    // The second in progress is left out until it is over.
    expect(agg.view().edges[0]!['10s'].requests).toBe(0);
    now += 1_000;
    const edge = agg.view().edges[0]!;
    expect(edge['10s']).toMatchObject({ requests: 5, failures: 0, successRate: 1 });
    expect(edge['1m']).toMatchObject({ requests: 15, failures: 2, rps: 0.25 });
    expect(agg.view().breakers).toEqual([{ service: 'a', instance: 'a-1', destination: 'b', subset: 'v1', state: 'open' }]);
    now += 61_000;
    expect(agg.view().edges[0]!['1m'].requests).toBe(0);
  });

  it('keeps serving views after a stats message without a list of breakers', () => {
    const agg = new StatsAggregator(() => 1_000_000);
    agg.ingest(proxy, JSON.parse('{"bounds":[],"edges":[],"breakers":null}'));
    expect(agg.view().breakers).toEqual([]);
    expect(agg.breakersTo('b')).toEqual([]);
  });

  it('lists the ejections callers report until they end, their sidecar goes silent or says goodbye; none from a sidecar that does not report them', () => {
    let now = 1_000_000;
    const agg = new StatsAggregator(() => now);
    const ejection = { destination: 'b', endpoint: '10.0.0.7:15443', since: now - 1_000, until: now + 60_000, reason: '5 consecutive errors' };
    agg.ingest(proxy, { bounds: BOUNDS, edges: [], breakers: [], ejections: [ejection] });
    // An older sidecar's message has no `ejections`: it reports none.
    agg.ingest({ id: 'p2', service: 'c', instanceId: 'c-1' }, { bounds: BOUNDS, edges: [], breakers: [] });
    // One that cannot be dated is left out rather than fail every view.
    agg.ingest({ id: 'p3', service: 'd', instanceId: 'd-1' }, JSON.parse('{"bounds":[],"edges":[],"breakers":[],"ejections":[{"destination":"b","endpoint":"x:1","since":"soon","until":null},null]}'));
    const listed = { service: 'a', instance: 'a-1', destination: 'b', endpoint: '10.0.0.7:15443', since: new Date(now - 1_000).toISOString(), until: new Date(now + 60_000).toISOString(), reason: '5 consecutive errors' };
    expect(agg.ejectionsTo('b')).toEqual([listed]);
    expect(agg.ejectionsTo('c')).toEqual([]);
    expect(agg.view({ service: 'b' }).ejections).toEqual([listed]);
    expect(agg.view({ service: 'c' }).ejections).toEqual([]);
    // The sidecar says it ended.
    agg.ingest(proxy, { bounds: BOUNDS, edges: [], breakers: [], ejections: [] });
    expect(agg.ejectionsTo('b')).toEqual([]);
    // A short one ends at its `until`, whether or not the sidecar has said so yet.
    agg.ingest(proxy, { bounds: BOUNDS, edges: [], breakers: [], ejections: [{ ...ejection, until: now + 2_000 }] });
    expect(agg.ejectionsTo('b')).toHaveLength(1);
    now += 2_000;
    expect(agg.ejectionsTo('b')).toEqual([]);
    // A sidecar that went silent is forgotten after 30 s; one that said goodbye at once.
    agg.ingest(proxy, { bounds: BOUNDS, edges: [], breakers: [], ejections: [{ ...ejection, until: now + 120_000 }] });
    now += 30_001;
    expect(agg.ejectionsTo('b')).toEqual([]);
    agg.ingest(proxy, { bounds: BOUNDS, edges: [], breakers: [], ejections: [{ ...ejection, until: now + 120_000 }] });
    agg.goodbye(proxy);
    expect(agg.ejectionsTo('b')).toEqual([]);
  });

  it('reads a steady rate as steady at any moment, though each sidecar reports once a second', () => {
    let now = 7_000_000;
    const agg = new StatsAggregator(() => now);
    const rps10s: number[] = [];
    const rps1m: number[] = [];
    // 50 requests a second from each of two sidecars, reporting 300 ms and 800 ms into each
    // second; the view is read every 100 ms from the 70th second on.
    for (let tick = 0; tick < 90 * 10; tick++) {
      if (tick % 10 === 3) agg.ingest(proxy, { bounds: BOUNDS, edges: [delta({ classes: [0, 50, 0, 0, 0], buckets: [0, 50, 0, 0, 0] })], breakers: [] });
      if (tick % 10 === 8) agg.ingest({ ...proxy, id: 'p2', instanceId: 'a-2' }, { bounds: BOUNDS, edges: [delta({ classes: [0, 50, 0, 0, 0], buckets: [0, 50, 0, 0, 0] })], breakers: [] });
      if (tick >= 70 * 10) {
        const edge = agg.view().edges[0]!;
        rps10s.push(edge['10s'].rps);
        rps1m.push(edge['1m'].rps);
      }
      now += 100;
    }
    expect(new Set(rps10s)).toEqual(new Set([100]));
    expect(new Set(rps1m)).toEqual(new Set([100]));
  });

  /** An aggregator that took `edges` from a's sidecar, read once their second is over. */
  function aggregated(edges: EdgeDelta[]): StatsAggregator {
    let now = 5_000_000;
    const agg = new StatsAggregator(() => now);
    agg.ingest(proxy, { bounds: BOUNDS, edges, breakers: [] });
    now += 1_000;
    return agg;
  }

  it("shows a service from its own sidecars' inbound view, else from its callers'", () => {
    const agg = aggregated([
      delta({ destination: 'b', subset: 'v1' }),
      delta({ destination: 'b', subset: 'v2', classes: [0, 1, 0, 0, 3], buckets: [0, 4, 0, 0, 0] }),
      delta({ direction: 'inbound', source: 'a', destination: 'b', subset: 'v1', classes: [0, 7, 0, 0, 0], buckets: [0, 7, 0, 0, 0] }),
      delta({ destination: 'external' }),
      // Requests a's sidecar routed to no service (404 no-route).
      delta({ destination: 'unknown', subset: '', classes: [0, 0, 0, 2, 0], buckets: [2, 0, 0, 0, 0] }),
    ]);
    const view = agg.view();
    expect(view.services.map((s) => [s.service, s.seenFrom, s['1m'].requests])).toEqual([
      ['b', 'inbound', 7],
      ['external', 'outbound', 10],
    ]);
    const ab = view.edges.find((e) => e.destination === 'b')!;
    expect(ab['1m']).toMatchObject({ requests: 14, failures: 3 });
    expect(ab.subsets.map((s) => [s.subset, s['1m'].requests])).toEqual([['v1', 10], ['v2', 4]]);
    expect(agg.view({ service: 'external' }).edges.map((e) => e.destination)).toEqual(['external']);
    // NO_ROUTE is no service: it stays an edge of its caller's only.
    expect(view.edges.find((e) => e.destination === NO_ROUTE)!['1m']).toMatchObject({ requests: 2, failures: 0 });
    expect(agg.view({ service: 'a' }).edges.map((e) => e.destination)).toEqual([NO_ROUTE, 'b', 'external']);
    expect(agg.view({ service: 'unknown' }).services).toEqual([]);
    expect(view.bucketBoundsMs).toEqual([1, 10, 100, 1000]);
  });

  it('keeps a service named `unknown` apart from the requests that named no known service', () => {
    const agg = aggregated([
      // Routed to the service `unknown` (a subset always: a split's, or `*`), seen from a's side only.
      delta({ destination: 'unknown', subset: '*', classes: [0, 5, 0, 0, 1], buckets: [0, 6, 0, 0, 0] }),
      // Named no service a's snapshot knows: counted by a's sidecar as `unknown`, with no subset.
      delta({ destination: 'unknown', subset: '', classes: [0, 0, 0, 2, 0], buckets: [2, 0, 0, 0, 0] }),
    ]);
    const view = agg.view();
    expect(view.services.map((s) => [s.service, s.seenFrom, s['1m'].requests])).toEqual([['unknown', 'outbound', 6]]);
    expect(view.edges.map((e) => [e.source, e.destination, e['1m'].requests, e['1m'].failures])).toEqual([
      ['a', NO_ROUTE, 2, 0],
      ['a', 'unknown', 6, 1],
    ]);
    expect(agg.view({ service: 'unknown' }).edges.map((e) => e.destination)).toEqual(['unknown']);
    // The key is no name a service could have, so no `?service=` can ask for it.
    expect(serviceName.safeParse(NO_ROUTE).success).toBe(false);
  });
});

const row = (over: Partial<TapRow>): TapRow => ({ time: 0, direction: 'inbound', source: 'a', destination: 'b', subset: 'v1', method: 'GET', authority: 'b', path: '/x', status: 200, grpcStatus: -1, latencyMs: 1, traceId: '', attempts: 1, ...over });

describe('tap', () => {
  it('filters by method, path prefix, status class or code, direction and peer', () => {
    expect(matchesTap({ method: 'get', pathPrefix: '/x' }, row({}))).toBe(true);
    expect(matchesTap({ method: 'POST' }, row({}))).toBe(false);
    expect(matchesTap({ status: '5xx' }, row({ status: 503 }))).toBe(true);
    expect(matchesTap({ status: '5xx' }, row({ status: 200 }))).toBe(false);
    expect(matchesTap({ status: '503' }, row({ status: 504 }))).toBe(false);
    expect(matchesTap({ peer: 'a' }, row({}))).toBe(true);
    expect(matchesTap({ peer: 'a', direction: 'outbound' }, row({}))).toBe(false);
  });

  it('opens the tap on the first subscriber, fans rows out, closes it after the last', () => {
    const sent: string[] = [];
    const hub = new TapHub({ send: (service, kind) => void sent.push(`${kind} ${service}`) });
    const got1: string[] = [];
    const got2: string[] = [];
    const stop1 = hub.subscribe('b', {}, (e) => void got1.push(e.path));
    const stop2 = hub.subscribe('b', { status: '5xx' }, (e) => void got2.push(e.path));
    expect(sent).toEqual(['tap-start b']);
    hub.ingest({ service: 'b', instanceId: 'b-1' }, { rows: [row({ path: '/ok' }), row({ path: '/bad', status: 500 })], dropped: 0 });
    hub.ingest({ service: 'c', instanceId: 'c-1' }, { rows: [row({ path: '/other' })], dropped: 0 });
    expect(got1).toEqual(['/ok', '/bad']);
    expect(got2).toEqual(['/bad']);
    stop1();
    expect(sent).toEqual(['tap-start b']);
    stop2();
    expect(sent).toEqual(['tap-start b', 'tap-stop b']);
    hub.close();
  });

  it('renews the lease while someone watches', () => {
    vi.useFakeTimers();
    try {
      const sent: string[] = [];
      const hub = new TapHub({ send: (_service, kind) => void sent.push(kind) });
      hub.subscribe('b', {}, () => undefined);
      vi.advanceTimersByTime(6_500);
      expect(sent).toEqual(['tap-start', 'tap-start', 'tap-start']);
      hub.close();
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('TraceStore', () => {
  const span = (traceId: string, spanId: string, parentSpanId = '', status = 200, over: Partial<SpanRecord> = {}): SpanRecord => ({
    traceId, spanId, parentSpanId, name: 'GET b', kind: 'client', service: 'a', instance: 'a-1', source: 'a', destination: 'b', subset: 'v1', method: 'GET', path: '/', status, grpcStatus: -1, startMs: 1000, durationMs: 5, attempts: 1, callerAttempt: 0, resendCount: 0, events: [],
    ...over,
  });
  /** One hop caller → callee: the caller's client span and the callee's server span under it. */
  const hop = (caller: string, callee: string, parent: string, startMs: number): SpanRecord[] => [
    span('t', `${caller}-out`, parent, 200, { name: `GET ${callee}`, path: `/${callee}`, service: caller, source: caller, destination: callee, startMs }),
    span('t', `${callee}-in`, `${caller}-out`, 200, { name: `GET ${callee}`, path: `/${callee}`, kind: 'server', service: callee, source: caller, destination: callee, startMs: startMs + 1 }),
  ];

  it('groups spans by trace, summarises, and keeps only the newest traces', () => {
    const store = new TraceStore(2, 10);
    store.add([span('t1', 's1'), span('t1', 's2', 's1', 503)]);
    store.add([span('t2', 's3')]);
    expect(store.get('t1')).toMatchObject({ spans: 2, error: true, root: 'GET b /', services: ['a', 'b'] });
    store.add([span('t3', 's4')]);
    expect(store.get('t1')).toBeUndefined();
    expect(store.recent().map((t) => t.traceId).sort()).toEqual(['t2', 't3']);
  });

  it("counts a sidecar's own answer as an error whatever its status, a relayed 4xx not", () => {
    const store = new TraceStore();
    store.add([span('denied', 'c', '', 403), span('denied', 's', 'c', 403, { kind: 'server', reason: 'denied' })]);
    store.add([span('relayed', 'c', '', 404), span('relayed', 's', 'c', 404, { kind: 'server' })]);
    expect(store.get('denied')!.error).toBe(true);
    expect(store.get('relayed')!.error).toBe(false);
    // Each span says so too, for the waterfall's colours.
    expect(store.get('denied')!.spanList.map((s) => [s.spanId, s.failed])).toEqual([['c', false], ['s', true]]);
    expect(store.get('relayed')!.spanList.map((s) => s.failed)).toEqual([false, false]);
  });

  it('lists services in call order and roots an incomplete trace at its earliest hop, whatever order spans arrive in', () => {
    // web → frontend → backend: the innermost hop ends first, so its sidecar reports first.
    const [webOut, frontendIn] = hop('web', 'frontend', '', 1000);
    const [frontendOut, backendIn] = hop('frontend', 'backend', 'frontend-in', 1002);
    const store = new TraceStore();
    store.add([backendIn!, frontendOut!]);
    // frontend's client span is the earliest whose parent has not arrived: the root for now.
    expect(store.recent()[0]).toMatchObject({ root: 'GET backend /backend', services: ['frontend', 'backend'] });
    store.add([frontendIn!]);
    // Two hops whose parents have not arrived: the earlier one is the root.
    expect(store.recent()[0]).toMatchObject({ root: 'GET frontend /frontend', services: ['web', 'frontend', 'backend'] });
    store.add([webOut!]);
    expect(store.recent()[0]).toMatchObject({ root: 'GET frontend /frontend', services: ['web', 'frontend', 'backend'], spans: 4 });
    expect(store.get('t')).toMatchObject({ services: ['web', 'frontend', 'backend'] });
  });

  it('orders by the call tree, not by clocks, and survives span ids that loop', () => {
    // backend's host clock runs 50 ms behind: its span seems to start before its callers'.
    const [webOut, frontendIn] = hop('web', 'frontend', '', 1000);
    const [frontendOut, backendIn] = hop('frontend', 'backend', 'frontend-in', 1002);
    const store = new TraceStore();
    store.add([webOut!, frontendIn!, frontendOut!, { ...backendIn!, startMs: 953 }]);
    expect(store.get('t')).toMatchObject({ root: 'GET frontend /frontend', services: ['web', 'frontend', 'backend'] });
    store.add([span('loop', 'x', 'y', 200, { source: 'c', destination: 'd' }), span('loop', 'y', 'x', 200, { source: 'd', destination: 'e' })]);
    expect(store.get('loop')).toMatchObject({ spans: 2, services: ['c', 'd', 'e'] });
  });
});
