/**
 * Config writes against a running canary rollout: what counts as touching it (conflicts.ts),
 * and, with a real MeshConfig, CanaryController and file store, that a touching write is
 * refused whole (RunningCanaryError, nothing written, the rollout still running) and that a
 * forced one aborts the rollout, recording why, before it is written. Writes that do not
 * touch the rollout go through while it runs.
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { tempDir } from '../../test/support/index.js';
import { StreamRegistry } from '../registry/stream-registry.js';
import { MeshConfig, type CanaryWriteMode } from '../state/mesh-config.js';
import { FileStore } from '../store/file-store.js';
import { routesChange, RunningCanaryError, subsetChanges, type CanaryConflict, type RunningCanary } from './conflicts.js';
import { CanaryController } from './controller.js';

const rollout: RunningCanary = { service: 'backend', from: 'v1', to: 'v2', step: 0, steps: [25, 100], weight: 25 };

describe('what touches a running rollout', () => {
  it('routes: any change, compared with the schema defaults applied; the same rules are not a change', () => {
    const stored = [{ match: { pathPrefix: '/' }, split: { v1: 75, v2: 25 } }];
    expect(routesChange(stored, [{ match: { pathPrefix: '/' }, split: { v2: 25, v1: 75 } }])).toBe(false);
    expect(routesChange(stored, [{ match: { pathPrefix: '/' }, split: { v1: 75, v2: 25 }, timeout: '1s' }])).toBe(true);
    expect(routesChange(stored, [{ match: { pathPrefix: '/' }, split: { v1: 50, v2: 50 } }])).toBe(true);
    expect(routesChange(stored, [{ match: { pathPrefix: '/admin' }, split: { v1: 100 } }, ...stored])).toBe(true);
    expect(routesChange(stored, undefined)).toBe(true);
    expect(routesChange(undefined, undefined)).toBe(false);
    expect(routesChange([{ split: { v1: 100 }, timeout: '3s' }], [{ split: { v1: 100 }, timeout: '3000ms' }])).toBe(false);
  });

  it('subsets: only the selectors `from` and `to` resolve to (undeclared = version=<name>)', () => {
    const declared = { subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } } };
    expect(subsetChanges(rollout, undefined, declared)).toEqual([]);
    expect(subsetChanges(rollout, declared, undefined)).toEqual([]);
    expect(subsetChanges(rollout, declared, { ...declared, timeout: '2s', subsets: { ...declared.subsets, v3: { version: 'v3' } } })).toEqual([]);
    expect(subsetChanges(rollout, declared, { subsets: { v1: { version: 'v1' }, v2: { version: 'v2', zone: 'a' } } })).toEqual(['the selector of subset v2']);
    expect(subsetChanges(rollout, { subsets: { v1: { track: 'stable' } } }, { subsets: {} })).toEqual(['the selector of subset v1']);
  });
});

async function mesh() {
  const store = await FileStore.open(tempDir());
  const config = new MeshConfig(store, new StreamRegistry(1_000));
  const canaries = new CanaryController({
    store,
    setSplit: async (service, weights) => void (await config.setSplit(service, weights, undefined, { rollout: true })),
    // No sidecar announces the subsets: their instances would be healthy.
    healthyInstances: async () => 1,
    checkSplit: (service, weights) => config.checkSplit(service, weights),
    released: async () => 0,
    openWindow: () => ({ measure: () => ({ requests: 0, failures: 0, rps: 0, successRate: null, latencyMs: null }), close: () => {} }),
    lease: { location: 'the test', trouble: undefined, holder: async () => undefined },
    logger: createLogger('test', 'silent'),
  });
  await canaries.drive();
  config.guardWith(canaries);
  await config.putPolicy('backend', { timeout: '2s', subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } } });
  await config.putPolicy('other', { subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } } });
  // A long interval: the rollout stays at its first step for the whole test.
  await canaries.start('backend', { to: 'v2', steps: [25, 100], interval: '1h' });
  return { store, config, canaries };
}

async function refusal(p: Promise<unknown>): Promise<RunningCanaryError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(RunningCanaryError);
  return err as RunningCanaryError;
}

function forced(canaries: CanaryController, seen: CanaryConflict[][] = []): CanaryWriteMode {
  return {
    force: async (conflicts) => {
      seen.push([...conflicts]);
      for (const c of conflicts) await canaries.abort(c.canary.service, `aborted by a forced write (test) that changes ${c.changes.join(' and ')}`);
    },
  };
}

describe('writes during a running rollout', () => {
  it('a write that touches it is refused whole, naming the rollout and how to proceed; nothing is written', async () => {
    const { store, config, canaries } = await mesh();
    try {
      const revision = store.currentRevision;
      const routes = (await config.getRoutes('backend'))!.value;
      expect(routes).toEqual([{ match: { pathPrefix: '/' }, split: { v1: 75, v2: 25 } }]);

      const split = await refusal(config.setSplit('backend', { v1: 100 }));
      expect(split.conflicts).toEqual([{ canary: rollout, changes: ['the split of its catch-all rule'] }]);
      expect(split.message).toMatch(/^a canary rollout of backend is running \(v1 → v2, step 1 of 2 at 25% v2\) and this write would change the split of its catch-all rule; nothing was written\. Abort the rollout first \(skein canary backend --abort, or DELETE \/api\/v1\/canaries\/backend\), or repeat the write with force \(\?force=true; skein apply --force, skein split --force\)/);
      expect((await refusal(config.putRoutes('backend', [{ split: { v1: 100 } }]))).conflicts[0]!.changes).toEqual(['its routes']);
      expect((await refusal(config.deleteRoutes('backend'))).conflicts[0]!.changes).toEqual(['its routes (deleted)']);
      expect((await refusal(config.putPolicy('backend', { subsets: { v1: { version: 'v1' }, v2: { version: 'v3' } } }))).conflicts[0]!.changes).toEqual(['the selector of subset v2']);
      // Atomic: the file's intentions and its other service are not written either.
      const file = {
        services: { other: { timeout: '1s', subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } } } },
        routes: { backend: [{ split: { v1: 50, v2: 50 } }], other: [{ split: { v1: 100 } }] },
        intentions: { defaultAction: 'allow', rules: [] },
      };
      const applied = await refusal(config.apply(file));
      expect(applied.conflicts).toEqual([{ canary: rollout, changes: ['its routes'], where: ['routes.backend'] }]);
      expect((await config.checkApply(file)).conflicts).toHaveLength(1);

      expect(store.currentRevision).toBe(revision);
      expect((await config.getRoutes('backend'))!.value).toEqual(routes);
      expect(await config.getIntentions()).toBeUndefined();
      expect(await canaries.latest('backend')).toMatchObject({ status: 'running', step: 0, weight: 25 });
    } finally {
      await canaries.close();
    }
  });

  it('writes that do not touch it go through: other services, intentions, the rest of its policy, the same routes', async () => {
    const { config, canaries } = await mesh();
    try {
      await config.setSplit('other', { v1: 50, v2: 50 });
      await config.putIntentions({ defaultAction: 'allow', rules: [] });
      await config.putPolicy('backend', { timeout: '5s', retries: { attempts: 1 }, subsets: { v1: { version: 'v1' }, v2: { version: 'v2' }, v3: { version: 'v3' } } });
      await config.setSplit('backend', { v1: 75, v2: 25 });
      await config.apply({ routes: { backend: [{ match: { pathPrefix: '/' }, split: { v1: 75, v2: 25 } }], other: [{ split: { v1: 100 } }] } });
      expect(await canaries.latest('backend')).toMatchObject({ status: 'running', step: 0 });
    } finally {
      await canaries.close();
    }
  });

  it('forced, it aborts the rollout first (restoring from=100, saying why), then writes', async () => {
    const { store, config, canaries } = await mesh();
    try {
      const seen: CanaryConflict[][] = [];
      await config.setSplit('backend', { v1: 60, v2: 40 }, undefined, forced(canaries, seen));
      expect(seen).toEqual([[{ canary: rollout, changes: ['the split of its catch-all rule'] }]]);
      expect(await canaries.latest('backend')).toMatchObject({ status: 'aborted', reason: 'aborted by a forced write (test) that changes the split of its catch-all rule' });
      expect((await store.get('canaries/backend'))!.value).toMatchObject({ status: 'aborted' });
      expect((await config.getRoutes('backend'))!.value).toEqual([{ match: { pathPrefix: '/' }, split: { v1: 60, v2: 40 } }]);
      // No rollout runs any more: the next write is not refused.
      await config.setSplit('backend', { v1: 100 });
    } finally {
      await canaries.close();
    }
  });

  it('a forced apply aborts the rollouts it touches, then writes the whole file', async () => {
    const { config, canaries } = await mesh();
    try {
      const seen: CanaryConflict[][] = [];
      const file = {
        services: { backend: { subsets: { v1: { version: 'v1' }, v2: { version: 'v2', track: 'canary' } } } },
        routes: { backend: [{ split: { v1: 100 } }] },
        intentions: { defaultAction: 'deny', rules: [] },
      };
      const applied = await config.apply(file, forced(canaries, seen));
      expect(applied.map((a) => a.document.key)).toEqual(['policies/backend', 'routes/backend', 'intentions']);
      expect(seen).toEqual([[{ canary: rollout, changes: ['the selector of subset v2', 'its routes'], where: ['services.backend', 'routes.backend'] }]]);
      expect(await canaries.latest('backend')).toMatchObject({ status: 'aborted' });
      expect((await config.getRoutes('backend'))!.value).toEqual([{ split: { v1: 100 } }]);
      expect((await config.getIntentions())!.value).toEqual({ defaultAction: 'deny', rules: [] });
    } finally {
      await canaries.close();
    }
  });

  it('a rollout stored as running by another replica is guarded too (its key is checked at commit)', async () => {
    const { store, config, canaries } = await mesh();
    await canaries.close();
    // Another control plane on the same store: no loop here, the stored state says running.
    const replica = new MeshConfig(store, new StreamRegistry(1_000));
    const other = new CanaryController({ store, setSplit: () => Promise.reject(new Error('not this one')), healthyInstances: () => Promise.reject(new Error('not this one')), checkSplit: () => Promise.reject(new Error('not this one')), released: async () => 0, openWindow: () => { throw new Error('no'); }, lease: { location: 'the test', trouble: undefined, holder: async () => 'http://127.0.0.1:1' }, logger: createLogger('test', 'silent') });
    replica.guardWith(other);
    expect((await refusal(replica.setSplit('backend', { v1: 100 }))).conflicts[0]!.canary).toEqual(rollout);
    expect(await other.running('other')).toEqual({ check: { op: 'check', key: 'canaries/other', revision: 0 } });
  });
});
