import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../common/config/parse.js';
import { createLogger } from '../../common/log.js';
import { DURATION_BUCKETS } from '../../common/proto/telemetry.js';
import { tempDir, waitUntil } from '../../test/support/index.js';
import type { Golden } from '../observability/golden.js';
import { StatsAggregator } from '../observability/stats.js';
import { FileStore } from '../store/file-store.js';
import { InstancesNotKnownError } from '../state/registry-gap.js';
import { StoredConfigError } from '../store/stored-entries.js';
import { CanaryController, CanaryNotReadyError, NoCanaryError, SplitNotPublishedError, type CanaryDeps, type CanaryState } from './controller.js';
import { canaryBody } from './schema.js';

const at = '2026-12-05T12:00:00.000Z';

function state(service: string, over: Partial<CanaryState> = {}): CanaryState {
  const spec = canaryBody.parse({ to: 'v2', steps: [50, 100] });
  return { service, spec, status: 'succeeded', step: 1, weight: 100, startedAt: at, stepStartedAt: at, updatedAt: at, endedAt: at, analyses: [], ...over };
}

/** A controller's deps, `over` saying how each one a test uses answers; the others are not expected to be used (`to` has a healthy instance, no sidecar is held back). */
function deps(store: FileStore, over: Partial<CanaryDeps> = {}): CanaryDeps {
  return {
    store,
    setSplit: () => Promise.reject(new Error('no split expected')),
    healthyInstances: async () => 1,
    checkSplit: async () => {},
    released: async () => 0,
    openWindow: measuring(() => { throw new Error('no measurement expected'); }),
    lease: { location: 'the test', trouble: undefined, holder: async () => undefined },
    logger: createLogger('test', 'silent'),
    ...over,
  };
}

/** A step window that measures `measure`'s answers, for a test that decides what each analysis sees. */
function measuring(measure: (seconds: number) => Golden): CanaryDeps['openWindow'] {
  return () => ({ measure, close: () => {} });
}

/** A controller that drives rollouts, as the lease's holder does: the store's rollouts read and the running ones resumed. */
/** The rollout of catalog once it is no longer running. */
function untilEnded(c: CanaryController, timeoutMs: number, what: string): Promise<CanaryState> {
  return waitUntil(async () => {
    const s = await c.latest('catalog');
    return s!.status !== 'running' && s!;
  }, { timeoutMs, what });
}

async function driving(d: CanaryDeps): Promise<CanaryController> {
  const c = new CanaryController(d);
  await c.drive();
  return c;
}

function controller(store: FileStore): CanaryController {
  return new CanaryController(deps(store));
}

describe('stored canary rollouts', () => {
  it('load reads them back checked, and refuses hand-corrupted ones naming each key, writing nothing', async () => {
    const store = await FileStore.open(tempDir());
    await store.put('canaries/catalog', state('catalog'));
    const good = controller(store);
    await good.load();
    expect(await good.latest('catalog')).toEqual(state('catalog'));

    await store.put('canaries/orders', { ...state('orders'), status: 'paused', step: 'one' });
    await store.put('canaries/users', state('payments'));
    await store.put('canaries/Bad_Name', state('catalog'));
    await store.put('canaries/gateway', state('gateway', { step: 2, status: 'running' }));
    // Finished, so history only: a value the schema refuses (an interval over the 24h cap an
    // older version took) is skipped, not a reason to refuse the start.
    await store.put('canaries/payments', state('payments', { spec: { ...state('payments').spec, interval: 25 * 3_600_000 } }));
    const revision = store.currentRevision;
    const bad = controller(store);
    const refused = await bad.load().catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(StoredConfigError);
    expect((refused as StoredConfigError).problems).toEqual([
      'canaries/Bad_Name: not a service name: must be a DNS label: lowercase letters, digits and "-", at most 63 characters',
      'canaries/gateway: step: is past the last of spec.steps',
      'canaries/orders: status: Invalid enum value. Expected \'running\' | \'succeeded\' | \'rolled-back\' | \'aborted\', received \'paused\'',
      'canaries/orders: step: Expected number, received string',
      'canaries/users: holds the rollout of "payments", not of "users"',
    ]);
    await bad.drive();
    expect(store.currentRevision).toBe(revision);

    // Without the running and the misnamed ones, the start goes on past the finished one.
    for (const key of ['canaries/orders', 'canaries/users', 'canaries/Bad_Name', 'canaries/gateway']) await store.delete(key);
    const upgraded = controller(store);
    await upgraded.load();
    expect(await upgraded.latest('catalog')).toEqual(state('catalog'));
    expect(await upgraded.latest('payments')).toBeUndefined();
    expect((await store.get('canaries/payments'))?.value).toMatchObject({ status: 'succeeded' });
  });
});

describe('a rollout stored by an older version', () => {
  it('with minRequests 0 (taken then, judged as 1) resumes with 1 instead of refusing the start', async () => {
    const store = await FileStore.open(tempDir());
    const old = state('catalog');
    await store.put('canaries/catalog', { ...old, spec: { ...old.spec, thresholds: { ...old.spec.thresholds, minRequests: 0 } } });
    const c = controller(store);
    await c.load();
    expect((await c.latest('catalog'))!.spec.thresholds.minRequests).toBe(1);
  });

  it('with a maxP99 past the last latency bucket (taken then, never exceeded) resumes with 0, no latency check', async () => {
    const store = await FileStore.open(tempDir());
    const old = state('catalog');
    await store.put('canaries/catalog', { ...old, spec: { ...old.spec, thresholds: { ...old.spec.thresholds, maxP99: 3_600_000_000 } } });
    const c = controller(store);
    await c.load();
    expect((await c.latest('catalog'))!.spec.thresholds).toEqual({ ...old.spec.thresholds, maxP99: 0 });
  });
});

describe('a rollout whose split cannot be restored', () => {
  it('still ends (aborted, saying why), instead of staying running with no loop', async () => {
    const store = await FileStore.open(tempDir());
    const running = state('catalog', { status: 'running', step: 0, weight: 50, endedAt: undefined });
    delete (running as { endedAt?: string }).endedAt;
    await store.put('canaries/catalog', { ...running, spec: { ...running.spec, interval: 3_600_000 } });
    // The restoring split is refused, as after an apply that dropped the rollout's `from` subset.
    const c = await driving(deps(store, {
      setSplit: async (_s, w) => {
        if (w.v1 === 100) throw new Error('unknown subset "v1" of catalog');
      },
    }));
    const ended = await c.abort('catalog');
    expect(ended).toMatchObject({ status: 'aborted' });
    expect(ended!.reason).toMatch(/aborted by an operator; the split could not be restored to v1=100 \(unknown subset "v1" of catalog\)/);
    expect((await c.latest('catalog'))!.status).toBe('aborted');
    expect((await store.get('canaries/catalog'))!.value).toMatchObject({ status: 'aborted' });
    expect(await c.abort('catalog')).toBeUndefined();
  });
});

describe('a split stored but not published', () => {
  const healthy: Golden = { requests: 50, failures: 0, rps: 50, successRate: 1, latencyMs: { p50: 1, p95: 2, p99: 3, mean: 1 } };
  /** A controller whose splits after the first `published` ones are stored but not published, as while another stored entry is refused. */
  async function unpublishing(store: FileStore, published: number) {
    const splits: Record<string, number>[] = [];
    const c = await driving(deps(store, {
      setSplit: async (_service, weights) => {
        splits.push(weights);
        if (splits.length > published) throw new SplitNotPublishedError(`the split ${JSON.stringify(weights)} is stored but not published`);
      },
      openWindow: measuring(() => healthy),
    }));
    return { c, splits };
  }

  it('refuses the start (its first split set back to from=100), and keeps no rollout', async () => {
    const store = await FileStore.open(tempDir());
    const { c, splits } = await unpublishing(store, 0);
    const err = await c.start('catalog', { to: 'v2', steps: [50, 100] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SplitNotPublishedError);
    expect((err as Error).message).toBe('the canary rollout of catalog did not start: the split {"v1":50,"v2":50} is stored but not published; its split is set back to v1=100');
    expect(splits).toEqual([{ v1: 50, v2: 50 }, { v1: 100 }]);
    expect(await c.latest('catalog')).toBeUndefined();
    expect(await store.get('canaries/catalog')).toBeUndefined();
  });

  it('rolls a running rollout back instead of advancing (or succeeding) on a split sidecars never got', async () => {
    const store = await FileStore.open(tempDir());
    const { c, splits } = await unpublishing(store, 1);
    await c.start('catalog', { to: 'v2', steps: [50, 100], interval: '500ms', thresholds: { minRequests: 1 } });
    const ended = await untilEnded(c, 10_000, 'the rollout to end');
    expect(ended.status).toBe('rolled-back');
    expect(ended.reason).toBe('could not set the split to 100% v2: the split {"v2":100} is stored but not published; the split {"v1":100} is stored but not published');
    expect(splits).toEqual([{ v1: 50, v2: 50 }, { v2: 100 }, { v1: 100 }]);
    await c.close();
  });
});

describe('concurrent aborts', () => {
  it('end the rollout once (one restore, one end, the same answer to both), and a start meanwhile is refused', async () => {
    const store = await FileStore.open(tempDir());
    const splits: Record<string, number>[] = [];
    let release!: () => void;
    const restoring = new Promise<void>((resolve) => (release = resolve));
    const c = await driving(deps(store, {
      setSplit: async (_service, weights) => {
        splits.push(weights);
        if (weights.v1 === 100) await restoring;
      },
    }));
    await c.start('catalog', { to: 'v2', steps: [25, 100], interval: '10m' });
    const first = c.abort('catalog');
    const second = c.abort('catalog', 'aborted by a forced write');
    await waitUntil(() => splits.some((w) => w.v1 === 100), { what: 'the split to be restoring' });
    await expect(c.start('catalog', { to: 'v2', steps: [50, 100], interval: '10m' })).rejects.toThrow(/the canary rollout of catalog is being aborted/);
    release();
    const [a, b] = await Promise.all([first, second]);
    expect(a).toMatchObject({ status: 'aborted', reason: 'aborted by an operator' });
    expect(b).toEqual(a);
    expect(splits).toEqual([{ v1: 75, v2: 25 }, { v1: 100 }]);
    expect((await store.get('canaries/catalog'))!.value).toEqual(a);
    expect(await c.abort('catalog')).toBeUndefined();
  });
});

describe('an abort during the resync hold after a start', () => {
  it('is refused while `from` may be unknown only for now, the rollout left running; once it is known, it ends it', async () => {
    const store = await FileStore.open(tempDir());
    const splits: Record<string, number>[] = [];
    let resyncing = true;
    const c = await driving(deps(store, {
      setSplit: async (_service, weights) => void splits.push(weights),
      checkSplit: async () => {
        if (resyncing) throw new InstancesNotKnownError(['v1: unknown subset "v1" of catalog: not declared in its policy and no instance has version=v1'], { why: 'the control plane is still resyncing', until: Date.now() + 5_000 });
      },
    }));
    await c.start('catalog', { to: 'v2', steps: [25, 100], interval: '10m' });
    await expect(c.abort('catalog')).rejects.toBeInstanceOf(InstancesNotKnownError);
    expect(await c.latest('catalog')).toMatchObject({ status: 'running', weight: 25 });
    expect((await store.get('canaries/catalog'))!.value).toMatchObject({ status: 'running' });
    expect(splits).toEqual([{ v1: 75, v2: 25 }]);

    resyncing = false;
    expect(await c.abort('catalog')).toMatchObject({ status: 'aborted', reason: 'aborted by an operator' });
    expect(splits).toEqual([{ v1: 75, v2: 25 }, { v1: 100 }]);
  });
});

describe('a canary subset with no healthy instance', () => {
  const healthy: Golden = { requests: 50, failures: 0, rps: 50, successRate: 1, latencyMs: { p50: 1, p95: 2, p99: 3, mean: 1 } };

  it('refuses the start (nothing split, nothing stored): its step would send requests nowhere', async () => {
    const store = await FileStore.open(tempDir());
    const splits: Record<string, number>[] = [];
    const c = await driving(deps(store, { healthyInstances: async () => 0, setSplit: async (_s, w) => void splits.push(w) }));
    const err = await c.start('catalog', { to: 'v2', steps: [20, 100] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CanaryNotReadyError);
    expect((err as Error).message).toBe('to: subset v2 of catalog has no healthy instance, so 20% of its requests would fail; start the rollout once one is ready');
    expect(splits).toEqual([]);
    expect(await c.latest('catalog')).toBeUndefined();
    expect(await store.get('canaries/catalog')).toBeUndefined();
  });

  it('holds a passing step instead of moving weight onto it, counted against maxHolds, and advances once one is back', async () => {
    const store = await FileStore.open(tempDir());
    const splits: Record<string, number>[] = [];
    // Healthy at the start, gone at the first two analyses, back at the third.
    const answers = [1, 0, 0, 1];
    const c = await driving(deps(store, { healthyInstances: async () => answers.shift() ?? 1, setSplit: async (_s, w) => void splits.push(w), openWindow: measuring(() => healthy) }));
    await c.start('catalog', { to: 'v2', steps: [20, 100], interval: '500ms', maxHolds: 2, thresholds: { minRequests: 1 } });
    const ended = await untilEnded(c, 15_000, 'the rollout to end');
    expect(ended.status).toBe('succeeded');
    expect(ended.analyses.map((a) => [a.weight, a.decision, a.reason])).toEqual([
      [20, 'hold', 'no healthy instance of v2 to move more requests onto'],
      [20, 'hold', 'no healthy instance of v2 to move more requests onto'],
      [20, 'advance', undefined],
    ]);
    expect(splits).toEqual([{ v1: 80, v2: 20 }, { v2: 100 }]);
  });

  it('rolls back once the holds are used up', async () => {
    const store = await FileStore.open(tempDir());
    const splits: Record<string, number>[] = [];
    const answers = [1];
    const c = await driving(deps(store, { healthyInstances: async () => answers.shift() ?? 0, setSplit: async (_s, w) => void splits.push(w), openWindow: measuring(() => healthy) }));
    await c.start('catalog', { to: 'v2', steps: [20, 100], interval: '500ms', maxHolds: 1, thresholds: { minRequests: 1 } });
    const ended = await untilEnded(c, 15_000, 'the rollout to end');
    expect(ended).toMatchObject({ status: 'rolled-back', reason: 'no healthy instance of v2 to move more requests onto after 1 extra intervals' });
    expect(splits).toEqual([{ v1: 80, v2: 20 }, { v1: 100 }]);
  });
});

describe('a resumed rollout', () => {
  const running = (): CanaryState => {
    const s = state('catalog', { status: 'running', step: 0, weight: 50 });
    delete s.endedAt;
    return { ...s, spec: { ...s.spec, interval: 3_600_000 } };
  };

  it("sets its step's split again (the stored one may be another's), before its window starts", async () => {
    const store = await FileStore.open(tempDir());
    await store.put('canaries/catalog', running());
    const splits: Record<string, number>[] = [];
    const c = await driving(deps(store, { setSplit: async (_s, w) => void splits.push(w) }));
    expect(splits).toEqual([{ v1: 50, v2: 50 }]);
    expect(await c.latest('catalog')).toMatchObject({ status: 'running', step: 0, weight: 50 });
    await c.close();
  });

  it('is rolled back, saying why, when that split is refused', async () => {
    const store = await FileStore.open(tempDir());
    await store.put('canaries/catalog', running());
    const splits: Record<string, number>[] = [];
    const c = await driving(deps(store, {
      setSplit: async (_s, w) => {
        splits.push(w);
        if (w.v2 === 50) throw new Error('a split of catalog would not steer all its traffic: rule 0 comes before the catch-all rule');
      },
    }));
    expect(splits).toEqual([{ v1: 50, v2: 50 }, { v1: 100 }]);
    expect(await c.latest('catalog')).toMatchObject({
      status: 'rolled-back',
      reason: 'on resuming, could not set the split of step 1 (50% v2) again: a split of catalog would not steer all its traffic: rule 0 comes before the catch-all rule',
    });
    expect((await store.get('canaries/catalog'))!.value).toMatchObject({ status: 'rolled-back' });
  });

  it('whose subsets are known only by instances not yet reconnected sets its split once the resync hold releases them, still running', async () => {
    const store = await FileStore.open(tempDir());
    await store.put('canaries/catalog', running());
    let release!: (at: number) => void;
    const released = new Promise<number>((resolve) => (release = resolve));
    let reconnected = false;
    const splits: Record<string, number>[] = [];
    const c = await driving(deps(store, {
      released: () => released,
      // As the built-in registry answers right after a start: no instance carries version=v1 or v2 yet.
      setSplit: async (_s, w) => {
        if (!reconnected) throw new ConfigError(['v1: unknown subset "v1" of catalog: not declared in its policy and no instance has version=v1']);
        splits.push(w);
      },
    }));
    expect(await c.latest('catalog')).toMatchObject({ status: 'running', step: 0, weight: 50 });
    reconnected = true;
    const at = Date.now();
    release(at);
    await waitUntil(() => splits.length > 0, { timeoutMs: 5_000, what: 'the split set again' });
    expect(splits).toEqual([{ v1: 50, v2: 50 }]);
    const resumed = (await c.latest('catalog'))!;
    expect(resumed).toMatchObject({ status: 'running', step: 0, weight: 50 });
    expect(Date.parse(resumed.stepStartedAt)).toBeGreaterThanOrEqual(at);
    await c.close();
  });

  it('whose split is refused while the instances are not known yet (Consul\'s catalog unread, no hold) tries it again until they are, still running', async () => {
    const store = await FileStore.open(tempDir());
    await store.put('canaries/catalog', running());
    let unread = 3;
    const splits: Record<string, number>[] = [];
    const c = await driving(deps(store, {
      setSplit: async (_s, w) => {
        if (unread-- > 0) throw new InstancesNotKnownError(['v1: unknown subset "v1" of catalog: not declared in its policy and no instance has version=v1'], { why: "Consul's catalog has not been read", until: Date.now() + 20 });
        splits.push(w);
      },
    }));
    await waitUntil(() => splits.length > 0, { timeoutMs: 5_000, what: 'the split set again' });
    expect(splits).toEqual([{ v1: 50, v2: 50 }]);
    expect(await c.latest('catalog')).toMatchObject({ status: 'running', step: 0, weight: 50 });
    await c.close();
  });

  it('whose split is still refused once the hold has released the sidecars is rolled back, saying why', async () => {
    const store = await FileStore.open(tempDir());
    await store.put('canaries/catalog', running());
    const splits: Record<string, number>[] = [];
    const c = await driving(deps(store, {
      setSplit: async (_s, w) => {
        splits.push(w);
        throw new ConfigError([`${Object.keys(w)[0]}: unknown subset`]);
      },
    }));
    const ended = await untilEnded(c, 5_000, 'the rollback');
    expect(ended.reason).toMatch(/^on resuming, could not set the split of step 1 \(50% v2\) again: v1: unknown subset; the split could not be restored/);
    expect(splits).toEqual([{ v1: 50, v2: 50 }, { v1: 50, v2: 50 }, { v1: 100 }]);
  });
});

describe("a step's window", () => {
  it('stays open through its holds, so their requests add up, and opens anew with the next step', async () => {
    const store = await FileStore.open(tempDir());
    /** Which window each analysis measured, and the windows closed, in order. */
    const measuredIn: number[] = [];
    const closed: number[] = [];
    let opened = 0;
    let measured = 0;
    const c = await driving(deps(store, {
      setSplit: async () => {},
      openWindow: () => {
        const window = opened++;
        return {
          measure: (seconds) => {
            measuredIn.push(window);
            measured += 6;
            return { requests: measured, failures: 0, rps: measured / seconds, successRate: 1, latencyMs: { p50: 1, p95: 2, p99: 3, mean: 1 } };
          },
          close: () => void closed.push(window),
        };
      },
    }));
    await c.start('catalog', { to: 'v2', steps: [20, 50, 100], interval: '500ms', maxHolds: 2, thresholds: { minRequests: 10 } });
    const ended = await untilEnded(c, 15_000, 'the rollout to end');
    expect(ended.status).toBe('succeeded');
    expect(ended.analyses.map((a) => [a.step, a.decision, a.measured.requests])).toEqual([[0, 'hold', 6], [0, 'advance', 12], [1, 'advance', 18]]);
    expect(measuredIn).toEqual([0, 0, 1]);
    // Each closed once done with, so no window takes reports after its step.
    await waitUntil(() => closed.length === 2, { what: 'the last window closed' });
    expect(closed).toEqual([0, 1]);
  });

  it('takes no report whose interval began before its split was sent, however late that report comes', async () => {
    const store = await FileStore.open(tempDir());
    const stats = new StatsAggregator();
    // Snapshot 1 is what sidecars ran before the rollout; each split publishes the next.
    let version = 1;
    const opened: string[] = [];
    const c = await driving(deps(store, {
      setSplit: async () => void version++,
      openWindow: (service, subset, unversionedFrom) => (opened.push(String(version)), stats.openWindow(service, subset, String(version), unversionedFrom)),
    }));
    const report = (fromSnapshot: string, ok: number, failed: number) =>
      stats.ingest({ id: 'web-1', service: 'web', instanceId: 'web-1' }, {
        bounds: DURATION_BUCKETS,
        edges: [{ direction: 'outbound', source: 'web', destination: 'catalog', subset: 'v2', classes: [0, ok, 0, 0, failed], grpcFailures: 0, buckets: [ok + failed, ...new Array<number>(DURATION_BUCKETS.length).fill(0)], sumSeconds: 0 }],
        breakers: [],
        fromSnapshot,
      });
    await c.start('catalog', { to: 'v2', steps: [50, 100], interval: '500ms', thresholds: { minRequests: 10 } });
    await waitUntil(() => opened.length === 1, { what: "the first step's window" });
    expect(opened).toEqual(['2']);
    // A caller's report that straddles the switch: its interval began under snapshot 1, when v2
    // failed every request it got (a hand split tried before the rollout); it comes after the
    // window opened, as a report does up to a second after the switch (later from a busy sidecar).
    report('1', 0, 40);
    report('2', 20, 0);
    const ended = await untilEnded(c, 10_000, 'the rollout to end');
    expect(ended.analyses[0]).toMatchObject({ step: 0, decision: 'advance', measured: { requests: 20, successRate: 1 } });
    expect(ended.status).toBe('succeeded');
  });
});

describe('after a restart, while sidecars are held back (the resync hold)', () => {
  const healthy: Golden = { requests: 50, failures: 0, rps: 50, successRate: 1, latencyMs: { p50: 1, p95: 2, p99: 3, mean: 1 } };

  it("starts a step's window only once they are sent its split, so no step is judged or advanced on a split they do not run", async () => {
    const store = await FileStore.open(tempDir());
    let release!: (at: number) => void;
    const released = new Promise<number>((resolve) => (release = resolve));
    const splits: Record<string, number>[] = [];
    const windows: number[] = [];
    const c = await driving(deps(store, {
      released: () => released,
      setSplit: async (_s, w) => void splits.push(w),
      openWindow: (_service, _subset, unversionedFrom) => (windows.push(unversionedFrom), { measure: () => healthy, close: () => {} }),
    }));
    await c.start('catalog', { to: 'v2', steps: [50, 100], interval: '500ms', thresholds: { minRequests: 1 } });
    // A negative: well past when the first step would have been judged (500 ms, then the 1.2 s report lag).
    await sleep(2_500);
    expect(windows).toEqual([]);
    expect(splits).toEqual([{ v1: 50, v2: 50 }]);
    expect(await c.latest('catalog')).toMatchObject({ status: 'running', step: 0, analyses: [] });

    const at = Date.now();
    release(at);
    const ended = await untilEnded(c, 10_000, 'the rollout to end');
    expect(ended.status).toBe('succeeded');
    expect(ended.analyses[0]).toMatchObject({ step: 0, windowStart: new Date(at).toISOString(), decision: 'advance' });
    // Opened on the release, taking older sidecars' reports from a report's lag after it, and
    // before the step was judged: timed by order, not by a bound on how late a loaded machine's timer fires.
    expect(windows[0]).toBeGreaterThanOrEqual(at + 1_200);
    expect(windows[0]).toBeLessThanOrEqual(Date.parse(ended.analyses[0]!.analyzedAt));
  });
});

describe('operator actions on a running rollout', () => {
  const healthy: Golden = { requests: 50, failures: 0, rps: 50, successRate: 1, latencyMs: { p50: 1, p95: 2, p99: 3, mean: 1 } };

  it('pause stops its analyses with its split where it is, still owning it; resume restarts the step with a fresh window', async () => {
    const store = await FileStore.open(tempDir());
    const splits: Record<string, number>[] = [];
    let measured = 0;
    const c = await driving(deps(store, { setSplit: async (_s, w) => void splits.push(w), openWindow: measuring(() => (measured++, healthy)) }));
    await c.start('catalog', { to: 'v2', steps: [50, 100], interval: '500ms', thresholds: { minRequests: 1 } });
    const paused = await c.pause('catalog', 'checking the dashboards');
    expect(paused).toMatchObject({ status: 'running', step: 0, weight: 50, paused: { reason: 'checking the dashboards' } });
    expect((await store.get('canaries/catalog'))!.value).toEqual(paused);
    expect((await c.running('catalog')).canary).toMatchObject({ service: 'catalog', weight: 50 });
    await expect(c.pause('catalog')).rejects.toThrow(/^the canary rollout of catalog is already paused \(since .*: checking the dashboards\)/);
    // A negative: well past when the step would have been judged (500 ms, then the 1.2 s report lag).
    await sleep(2_500);
    expect(measured).toBe(0);
    expect(await c.latest('catalog')).toMatchObject({ analyses: [], weight: 50 });
    expect(splits).toEqual([{ v1: 50, v2: 50 }]);

    const before = Date.now();
    const resumed = await c.resumePaused('catalog');
    expect(resumed.paused).toBeUndefined();
    expect(Date.parse(resumed.stepStartedAt)).toBeGreaterThanOrEqual(before);
    await expect(c.resumePaused('catalog')).rejects.toThrow('the canary rollout of catalog is not paused');
    const ended = await untilEnded(c, 10_000, 'the rollout to end');
    expect(ended.status).toBe('succeeded');
    expect(ended.analyses[0]).toMatchObject({ step: 0, windowStart: resumed.stepStartedAt, decision: 'advance' });
    expect(splits).toEqual([{ v1: 50, v2: 50 }, { v2: 100 }]);
    await expect(c.pause('catalog')).rejects.toThrow('the canary rollout of catalog is not running: it succeeded');
  });

  it('answers NoCanaryError for a service with none, and aborts a paused one (its pause gone from the end)', async () => {
    const store = await FileStore.open(tempDir());
    const splits: Record<string, number>[] = [];
    const c = await driving(deps(store, { setSplit: async (_s, w) => void splits.push(w) }));
    for (const act of [() => c.pause('catalog'), () => c.resumePaused('catalog'), () => c.promote('catalog')]) {
      await expect(act()).rejects.toBeInstanceOf(NoCanaryError);
    }
    await c.start('catalog', { to: 'v2', steps: [25, 100], interval: '10m' });
    await c.pause('catalog');
    const aborted = await c.abort('catalog');
    expect(aborted).toMatchObject({ status: 'aborted', reason: 'aborted by an operator' });
    expect(aborted!.paused).toBeUndefined();
    expect(splits).toEqual([{ v1: 75, v2: 25 }, { v1: 100 }]);
    await expect(c.resumePaused('catalog')).rejects.toThrow('the canary rollout of catalog is not running: it was aborted (aborted by an operator)');
  });

  it('promote moves to the next step without its analysis (resuming a paused one); --full goes to 100% and succeeds, saying so', async () => {
    const store = await FileStore.open(tempDir());
    const splits: Record<string, number>[] = [];
    // measure throws: no analysis may run (10m interval).
    const c = await driving(deps(store, { setSplit: async (_s, w) => void splits.push(w) }));
    await c.start('catalog', { to: 'v2', steps: [10, 25, 50, 100], interval: '10m' });
    await c.pause('catalog');
    const promoted = await c.promote('catalog');
    expect(promoted).toMatchObject({ status: 'running', step: 1, weight: 25, analyses: [], promotions: [{ step: 0, weight: 10, full: false }] });
    expect(promoted.paused).toBeUndefined();
    const full = await c.promote('catalog', true);
    expect(full).toMatchObject({
      status: 'succeeded',
      step: 3,
      weight: 100,
      reason: 'promoted by an operator at step 2 of 4 (25% v2) to 100%, skipping the analysis of this step and of those up to 100%',
      promotions: [{ step: 0, weight: 10, full: false }, { step: 1, weight: 25, full: true }],
    });
    expect((await store.get('canaries/catalog'))!.value).toEqual(full);
    expect(splits).toEqual([{ v1: 90, v2: 10 }, { v1: 75, v2: 25 }, { v2: 100 }]);
  });

  it('promote leaves the rollout as it was when the next split is refused (503 while subsets are not known yet)', async () => {
    const store = await FileStore.open(tempDir());
    const splits: Record<string, number>[] = [];
    const c = await driving(deps(store, {
      setSplit: async (_s, w) => void splits.push(w),
      checkSplit: async () => {
        throw new InstancesNotKnownError(['v2: unknown subset "v2" of catalog'], { why: 'the control plane is still resyncing', until: Date.now() + 5_000 });
      },
    }));
    await c.start('catalog', { to: 'v2', steps: [25, 100], interval: '10m' });
    await expect(c.promote('catalog')).rejects.toBeInstanceOf(InstancesNotKnownError);
    expect(await c.latest('catalog')).toMatchObject({ status: 'running', step: 0, weight: 25 });
    expect((await c.latest('catalog'))!.promotions).toBeUndefined();
    expect(splits).toEqual([{ v1: 75, v2: 25 }]);
    // Its loop runs again: a second start is still refused.
    await expect(c.start('catalog', { to: 'v2' })).rejects.toThrow(/already running/);
    await c.close();
  });

  it('taken together, are taken one after the other (a start meanwhile refused), each on the state the one before left', async () => {
    const store = await FileStore.open(tempDir());
    const splits: Record<string, number>[] = [];
    const c = await driving(deps(store, { setSplit: async (_s, w) => void splits.push(w) }));
    await c.start('catalog', { to: 'v2', steps: [10, 50, 100], interval: '10m' });
    const pause = c.pause('catalog', 'first');
    const again = c.pause('catalog', 'second');
    const promote = c.promote('catalog');
    await expect(c.start('catalog', { to: 'v2' })).rejects.toThrow(/already running/);
    const abort = c.abort('catalog');
    await expect(c.start('catalog', { to: 'v2' })).rejects.toThrow(/is being aborted/);
    expect(await pause).toMatchObject({ paused: { reason: 'first' } });
    await expect(again).rejects.toThrow(/already paused \(since \S+: first\)/);
    expect(await promote).toMatchObject({ status: 'running', step: 1, weight: 50 });
    expect(await abort).toMatchObject({ status: 'aborted', promotions: [{ step: 0, weight: 10, full: false }] });
    expect(splits).toEqual([{ v1: 90, v2: 10 }, { v1: 50, v2: 50 }, { v1: 100 }]);
  });

  it('promote of a rollout at its only step, 100, ends it succeeded as it is, skipping its analysis', async () => {
    const store = await FileStore.open(tempDir());
    const splits: Record<string, number>[] = [];
    const c = await driving(deps(store, { setSplit: async (_s, w) => void splits.push(w) }));
    await c.start('catalog', { to: 'v2', steps: [100], interval: '10m' });
    expect(await c.promote('catalog')).toMatchObject({ status: 'succeeded', step: 0, weight: 100, reason: 'promoted by an operator at step 1 of 1 (100% v2) to 100%, skipping its analysis' });
    expect(splits).toEqual([{ v2: 100 }]);
  });

  it('close waits for an action under way, which starts the loop again, so no loop runs after it', async () => {
    const store = await FileStore.open(tempDir());
    let release!: () => void;
    const blocked = new Promise<void>((resolve) => (release = resolve));
    const c = await driving(deps(store, { setSplit: async (_s, w) => { if (w.v2 === 50) await blocked; } }));
    await c.start('catalog', { to: 'v2', steps: [10, 50, 100], interval: '10m' });
    const promoted = c.promote('catalog');
    const closed = c.close();
    release();
    expect(await promoted).toMatchObject({ status: 'running', step: 1 });
    await closed;
    // With a loop left running, this start would be refused as "already running".
    expect(await c.start('catalog', { to: 'v2', steps: [50, 100], interval: '10m' })).toMatchObject({ status: 'running', step: 0 });
    await c.close();
  });

  it('a paused rollout stays paused across a restart, its split set again, and resumes from there', async () => {
    const store = await FileStore.open(tempDir());
    const first = await driving(deps(store, { setSplit: async () => {} }));
    await first.start('catalog', { to: 'v2', steps: [50, 100], interval: '500ms', thresholds: { minRequests: 1 } });
    await first.pause('catalog', 'night freeze');
    await first.close();

    const splits: Record<string, number>[] = [];
    let measured = 0;
    const second = await driving(deps(store, { setSplit: async (_s, w) => void splits.push(w), openWindow: measuring(() => (measured++, healthy)) }));
    expect(splits).toEqual([{ v1: 50, v2: 50 }]);
    expect(await second.latest('catalog')).toMatchObject({ status: 'running', paused: { reason: 'night freeze' } });
    await expect(second.start('catalog', { to: 'v2' })).rejects.toThrow(/already running/);
    // A negative, as above: a resumed-but-paused rollout judges nothing.
    await sleep(2_500);
    expect(measured).toBe(0);
    await second.resumePaused('catalog');
    const ended = await untilEnded(second, 10_000, 'the rollout to end');
    expect(ended.status).toBe('succeeded');
  });
});
