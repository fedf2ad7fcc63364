import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../common/config/parse.js';
import { tempDir } from '../../test/support/index.js';
import { RunningCanaryError, type RunningCanary } from '../canary/conflicts.js';
import type { Instance } from '../registry/discovery.js';
import { StreamRegistry } from '../registry/stream-registry.js';
import { FileStore } from '../store/file-store.js';
import { StoreConflictError } from '../store/store.js';
import { StoredConfigError } from '../store/stored-entries.js';
import { MeshConfig, type CanaryGuard } from './mesh-config.js';
import { InstancesNotKnownError } from './registry-gap.js';
import { ShadowedSplitError } from './split-rule.js';

describe('MeshConfig.load', () => {
  it('refuses entries that bypassed the API checks, naming each key, until they are fixed', async () => {
    const store = await FileStore.open(tempDir());
    const config = new MeshConfig(store, new StreamRegistry(1_000));
    await store.put('policies/catalog', { timeout: '2s' });
    await store.put('routes/catalog', 'garbage');
    await store.put('routes/Not_A_Service', []);
    const refused = await config.load().catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(StoredConfigError);
    expect((refused as StoredConfigError).problems).toEqual([
      'routes/Not_A_Service: not a service name: must be a DNS label: lowercase letters, digits and "-", at most 63 characters',
      'routes/catalog: (root): Expected array, received string',
    ]);

    await store.delete('routes/Not_A_Service');
    await store.put('routes/catalog', [{ split: { v1: 100 } }]);
    expect(await config.load()).toEqual({ policies: { catalog: { timeout: '2s' } }, routes: { catalog: [{ split: { v1: 100 } }] }, intentions: undefined });
  });
});

describe('intention rules that never decide', () => {
  const hidden = { defaultAction: 'deny', rules: [{ source: 'gateway', destination: '*', action: 'deny' }, { source: 'gateway', destination: 'orders', action: 'allow' }] };
  const problems = (err: unknown) => (err instanceof ConfigError ? err.problems : err);

  it('are refused by a PUT and an apply, naming the rule, with nothing written', async () => {
    const store = await FileStore.open(tempDir());
    const config = new MeshConfig(store, new StreamRegistry(1_000));
    expect(problems(await config.putIntentions(hidden).catch((e: unknown) => e))).toEqual(['rules[1]: never decides: rule 0 (gateway -> *) matches every call it would']);
    expect(problems(await config.apply({ services: { orders: { timeout: '2s' } }, intentions: hidden }).catch((e: unknown) => e))).toEqual([
      'intentions.rules[1]: never decides: rule 0 (gateway -> *) matches every call it would',
    ]);
    expect(store.currentRevision).toBe(0);
  });

  it('are loaded as they are from a store an older version wrote', async () => {
    const store = await FileStore.open(tempDir());
    await store.put('intentions', hidden);
    expect((await new MeshConfig(store, new StreamRegistry(1_000)).load()).intentions).toEqual(hidden);
  });
});

describe('MeshConfig.apply', () => {
  async function mesh() {
    const store = await FileStore.open(tempDir());
    const config = new MeshConfig(store, new StreamRegistry(1_000));
    await config.putPolicy('catalog', { timeout: '2s', subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } } });
    await config.putRoutes('catalog', [{ split: { v1: 50, v2: 50 } }]);
    return { store, config };
  }
  const problems = (err: unknown) => (err instanceof ConfigError ? err.problems : err);

  it('judges the file by the state it leaves: a policy may drop a subset the same file stops routing to', async () => {
    const { store, config } = await mesh();
    const file = { services: { catalog: { timeout: '3s', subsets: { v2: { version: 'v2' }, v3: { version: 'v3' } } } }, routes: { catalog: [{ split: { v2: 90, v3: 10 } }] } };
    // Each document on its own would be refused, whichever goes first.
    expect(problems(await config.putPolicy('catalog', file.services.catalog).catch((e: unknown) => e))).toEqual([
      'routes[0].split.v1: unknown subset "v1" of catalog: not declared in its policy and no instance has version=v1',
    ]);
    expect(problems(await config.putRoutes('catalog', file.routes.catalog).catch((e: unknown) => e))).toEqual([
      '[0].split.v3: unknown subset "v3" of catalog: not declared in its policy and no instance has version=v3',
    ]);
    const revision = store.currentRevision;
    expect((await config.checkApply(file)).documents.map((d) => d.key)).toEqual(['policies/catalog', 'routes/catalog']);
    expect(store.currentRevision).toBe(revision);

    const applied = await config.apply(file);
    expect(applied.map(({ document, entry }) => [document.kind, document.service, entry.revision])).toEqual([['policy', 'catalog', revision + 1], ['routes', 'catalog', revision + 2]]);
    expect((await config.load()).policies.catalog).toEqual(file.services.catalog);
    expect((await config.load()).routes.catalog).toEqual(file.routes.catalog);
  });

  it('refuses a policy duration past 24h through the admin API, naming the field (it would fire after 1 ms)', async () => {
    const { config } = await mesh();
    expect(problems(await config.putPolicy('catalog', { timeout: '1000h' }).catch((e: unknown) => e))).toEqual(['timeout: must be at most 24h, not 1000h']);
    expect(problems(await config.putRoutes('catalog', [{ timeout: '25h' }]).catch((e: unknown) => e))).toEqual(['[0].timeout: must be at most 24h, not 25h']);
  });

  it('refuses a file whose final state is invalid, whole, with every problem placed in the file', async () => {
    const { store, config } = await mesh();
    const revision = store.currentRevision;
    const file = {
      services: { catalog: { subsets: { v2: { version: 'v2' } } }, orders: { subsets: { v1: { version: 'v1' } } } },
      routes: { catalog: [{ split: { v2: 50, v9: 50 } }, { mirror: { subset: 'v1' } }] },
      intentions: { defaultAction: 'deny' },
    };
    const refused = await config.apply(file).catch((e: unknown) => e);
    expect(problems(refused)).toEqual([
      'routes.catalog[0].split.v9: unknown subset "v9" of catalog: not declared in its policy and no instance has version=v9',
      'routes.catalog[1].mirror.subset: unknown subset "v1" of catalog: not declared in its policy and no instance has version=v1',
    ]);
    // A policy alone may not drop a subset the routes it leaves in place use.
    expect(problems(await config.apply({ services: { catalog: { subsets: { v1: { version: 'v1' } } } } }).catch((e: unknown) => e))).toEqual([
      'services.catalog.routes[0].split.v2: unknown subset "v2" of catalog: not declared in its policy and no instance has version=v2',
    ]);
    // Schema problems are placed the same way.
    expect(problems(await config.apply({ routes: { catalog: [{ split: { v1: 60, v2: 50 } }] } }).catch((e: unknown) => e))).toEqual([
      'routes.catalog[0].split: weights must sum to 100',
    ]);
    expect(store.currentRevision).toBe(revision);
  });

  it('judges the file again when another writer changed what it read, and never writes past that change', async () => {
    const { store, config } = await mesh();
    await config.putRoutes('catalog', [{ split: { v2: 100 } }]);
    // The file drops v1, which no route uses; between its judgement and its transaction, someone routes to v1 again.
    const transaction = store.transaction.bind(store);
    let interfered = false;
    store.transaction = async (ops) => {
      if (!interfered) {
        interfered = true;
        await store.put('routes/catalog', [{ split: { v1: 100 } }]);
      }
      return transaction(ops);
    };
    const refused = await config.apply({ services: { catalog: { subsets: { v2: { version: 'v2' } } } } }).catch((e: unknown) => e);
    expect(interfered).toBe(true);
    expect(problems(refused)).toEqual(['services.catalog.routes[0].split.v1: unknown subset "v1" of catalog: not declared in its policy and no instance has version=v1']);
    expect((await config.getPolicy('catalog'))!.value).toMatchObject({ subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } } });
  });
});

describe('MeshConfig single writes against a concurrent writer of the other key', () => {
  /** A file store where `race` runs once, just before the first write of `key` goes to the store. */
  async function racing(key: string, race: (store: FileStore) => Promise<unknown>) {
    const store = await FileStore.open(tempDir());
    let armed = false;
    const before = async (ops: readonly { key: string }[]) => {
      if (!armed || !ops.some((op) => op.key === key)) return;
      armed = false;
      await race(store);
    };
    const wrapped = Object.create(store) as FileStore;
    wrapped.put = async (k, value, condition) => (await before([{ key: k }]), store.put(k, value, condition));
    wrapped.transaction = async (ops) => (await before(ops), store.transaction(ops));
    wrapped.delete = async (k, condition) => (await before([{ key: k }]), store.delete(k, condition));
    const config = new MeshConfig(wrapped, new StreamRegistry(1_000));
    await config.putPolicy('catalog', { subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } } });
    await config.putRoutes('catalog', [{ split: { v1: 100 } }]);
    armed = true;
    return { store, config };
  }
  const problems = (err: unknown) => (err instanceof ConfigError ? err.problems : err);

  it('a policy dropping v2 while routes start using it is judged again and refused', async () => {
    const { store, config } = await racing('policies/catalog', (s) => s.put('routes/catalog', [{ split: { v1: 50, v2: 50 } }]));
    expect(problems(await config.putPolicy('catalog', { subsets: { v1: { version: 'v1' } } }).catch((e: unknown) => e))).toEqual([
      'routes[0].split.v2: unknown subset "v2" of catalog: not declared in its policy and no instance has version=v2',
    ]);
    expect(Object.keys((await store.get('policies/catalog'))!.value as object)).toEqual(['subsets']);
    expect(((await store.get('policies/catalog'))!.value as { subsets: object }).subsets).toHaveProperty('v2');
  });

  it('routes using v2 while the policy drops it are judged again and refused; a split alike', async () => {
    const dropV2 = (s: FileStore) => s.put('policies/catalog', { subsets: { v1: { version: 'v1' } } });
    const routes = await racing('routes/catalog', dropV2);
    expect(problems(await routes.config.putRoutes('catalog', [{ split: { v1: 50, v2: 50 } }]).catch((e: unknown) => e))).toEqual([
      '[0].split.v2: unknown subset "v2" of catalog: not declared in its policy and no instance has version=v2',
    ]);
    expect((await routes.store.get('routes/catalog'))!.value).toEqual([{ split: { v1: 100 } }]);

    const split = await racing('routes/catalog', dropV2);
    expect(problems(await split.config.setSplit('catalog', { v1: 50, v2: 50 }).catch((e: unknown) => e))).toEqual([
      'v2: unknown subset "v2" of catalog: not declared in its policy and no instance has version=v2',
    ]);
    expect((await split.store.get('routes/catalog'))!.value).toEqual([{ split: { v1: 100 } }]);
  });

  it('deleting a policy while routes start using its subset is judged again and refused; the policy stays', async () => {
    const { store, config } = await racing('policies/catalog', (s) => s.put('routes/catalog', [{ split: { v2: 100 } }]));
    await store.delete('routes/catalog');
    expect(problems(await config.deletePolicy('catalog').catch((e: unknown) => e))).toEqual([
      'routes[0].split.v2: unknown subset "v2" of catalog: not declared in its policy and no instance has version=v2',
    ]);
    expect(((await store.get('policies/catalog'))!.value as { subsets: object }).subsets).toHaveProperty('v2');
  });

  it('a policy delete answers whether it existed, and a conflict on the caller\'s own If-Match as it is', async () => {
    const { store, config } = await racing('policies/catalog', async () => undefined);
    await store.delete('routes/catalog');
    const revision = (await store.get('policies/catalog'))!.revision;
    await expect(config.deletePolicy('catalog', { ifRevision: revision + 5 })).rejects.toThrow(/policies\/catalog is at revision/);
    expect(await config.deletePolicy('catalog', { ifRevision: revision })).toBe(true);
    expect(await store.get('policies/catalog')).toBeUndefined();
    expect(await config.deletePolicy('catalog')).toBe(false);
    await expect(config.deletePolicy('catalog', { ifRevision: revision })).rejects.toThrow(/policies\/catalog does not exist/);
  });

  it('a write whose other key did not move goes through in one attempt, and If-Match still answers a conflict', async () => {
    const { store, config } = await racing('policies/catalog', (s) => s.put('intentions', { defaultAction: 'deny' }));
    const written = await config.putPolicy('catalog', { timeout: '2s', subsets: { v1: { version: 'v1' } } });
    expect(written.value).toEqual({ timeout: '2s', subsets: { v1: { version: 'v1' } } });
    await expect(config.putRoutes('catalog', [{ split: { v1: 100 } }], { ifRevision: 1 })).rejects.toThrow(/routes\/catalog/);
    expect((await store.get('routes/catalog'))!.value).toEqual([{ split: { v1: 100 } }]);
  });
});

describe('concurrent writers', () => {
  it('all get through when they collide (each retry waits a jittered backoff), instead of most coming back 412', async () => {
    const store = await FileStore.open(tempDir());
    const config = new MeshConfig(store, new StreamRegistry(1_000));
    const file = { services: { catalog: { subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } } } }, routes: { catalog: [{ split: { v1: 90, v2: 10 } }] } };
    await config.apply(file);
    const results = await Promise.allSettled([
      ...Array.from({ length: 12 }, () => config.apply(file)),
      ...Array.from({ length: 6 }, (_, i) => config.setSplit('catalog', { v1: 100 - i, v2: i })),
    ]);
    expect(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
  });

  it('an apply with nothing in it is refused, as the CLI refuses an empty file', async () => {
    const config = new MeshConfig(await FileStore.open(tempDir()), new StreamRegistry(1_000));
    await expect(config.apply({})).rejects.toThrow(/nothing to apply/);
    await expect(config.checkApply({})).rejects.toThrow(/nothing to apply/);
  });
});

describe('guarded writes: forcing, and losing the race to another writer', () => {
  const rollout: RunningCanary = { service: 'catalog', from: 'v1', to: 'v2', step: 0, steps: [25, 100], weight: 25 };

  /**
   * A store whose writes (transactions and deletes) each run `race` first while `races` is
   * above 0, counting them; guarded by a rollout stored at `canaries/catalog` (`canary`
   * running, if given) as the CanaryController guards.
   */
  async function guarded(canary?: RunningCanary) {
    const store = await FileStore.open(tempDir());
    const state = { races: 0, writes: 0, race: (_: FileStore): Promise<unknown> => Promise.resolve() };
    const before = async () => {
      state.writes++;
      if (state.races === 0) return;
      state.races--;
      await state.race(store);
    };
    const wrapped = Object.create(store) as FileStore;
    wrapped.transaction = async (ops) => (await before(), store.transaction(ops));
    wrapped.delete = async (key, condition) => (await before(), store.delete(key, condition));
    const config = new MeshConfig(wrapped, new StreamRegistry(1_000));
    await config.putPolicy('catalog', { subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } } });
    await config.putRoutes('catalog', [{ split: { v1: 75, v2: 25 } }]);
    const guard: CanaryGuard = {
      running: async (service) => ({ ...(canary ? { canary } : {}), check: { op: 'check', key: `canaries/${service}`, revision: (await store.get(`canaries/${service}`))?.revision ?? 0 } }),
    };
    config.guardWith(guard);
    state.writes = 0;
    return { store, config, state };
  }
  const bumpCanary = (s: FileStore) => s.put('canaries/catalog', { status: 'aborted' });

  it('forced, gives up with the refusal after FORCE_ATTEMPTS aborts when the rollout keeps running; nothing is written', async () => {
    const { store, config, state } = await guarded(rollout);
    let aborts = 0;
    const mode = { force: async () => void aborts++ };
    const writes = [
      () => config.setSplit('catalog', { v1: 100 }, undefined, mode),
      () => config.putRoutes('catalog', [{ split: { v1: 100 } }], undefined, mode),
      () => config.deleteRoutes('catalog', undefined, mode),
      () => config.apply({ routes: { catalog: [{ split: { v1: 100 } }] } }, mode),
    ];
    const revision = store.currentRevision;
    for (const write of writes) {
      aborts = 0;
      await expect(write()).rejects.toBeInstanceOf(RunningCanaryError);
      expect(aborts).toBe(3);
    }
    expect(state.writes).toBe(0);
    expect(store.currentRevision).toBe(revision);
  });

  it('a write that loses the race on what it judged is judged again and made; a conflict on the caller\'s own condition is answered as it is', async () => {
    const { store, config, state } = await guarded();
    // The rollout's key moved: judged again even with the caller's own condition on the routes.
    Object.assign(state, { races: 1, race: bumpCanary });
    const routes = await config.putRoutes('catalog', [{ split: { v1: 100 } }], { ifRevision: (await store.get('routes/catalog'))!.revision });
    expect(routes.value).toEqual([{ split: { v1: 100 } }]);
    expect(state.writes).toBe(2);

    Object.assign(state, { writes: 0, races: 1 });
    expect((await config.setSplit('catalog', { v1: 60, v2: 40 })).value).toEqual([{ split: { v1: 60, v2: 40 } }]);
    expect(state.writes).toBe(2);

    // The routes moved under a guarded delete: judged again, then deleted.
    Object.assign(state, { writes: 0, races: 1, race: (s: FileStore) => s.put('routes/catalog', [{ split: { v1: 100 } }]) });
    expect(await config.deleteRoutes('catalog')).toBe(true);
    expect(state.writes).toBe(2);
    expect(await store.get('routes/catalog')).toBeUndefined();

    await store.put('routes/catalog', [{ split: { v1: 100 } }]);
    Object.assign(state, { writes: 0, races: 1 });
    await expect(config.deleteRoutes('catalog', { ifRevision: (await store.get('routes/catalog'))!.revision })).rejects.toBeInstanceOf(StoreConflictError);
    expect(state.writes).toBe(1);
  });

  it('gives up with the store conflict after JUDGED_ATTEMPTS when every attempt loses the race', async () => {
    const { store, config, state } = await guarded();
    Object.assign(state, { races: Infinity, race: bumpCanary });
    const err = await config.setSplit('catalog', { v1: 100 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreConflictError);
    expect((err as StoreConflictError).key).toBe('canaries/catalog');
    expect(state.writes).toBe(10);
    expect((await store.get('routes/catalog'))!.value).toEqual([{ split: { v1: 75, v2: 25 } }]);
  });
});

describe('MeshConfig.setSplit', () => {
  it('writes the split into the rule every request reaches, and refuses (writing nothing) one earlier rules would keep requests from', async () => {
    const store = await FileStore.open(tempDir());
    const config = new MeshConfig(store, new StreamRegistry(1_000));
    await config.putPolicy('catalog', { subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } } });
    // Matches every request, though not spelt as `{}` or `{pathPrefix: "/"}`.
    await config.putRoutes('catalog', [{ match: { pathPrefix: '/', headers: {} }, split: { v1: 100 } }]);
    expect((await config.setSplit('catalog', { v2: 100 })).value).toEqual([{ match: { pathPrefix: '/', headers: {} }, split: { v2: 100 } }]);

    const shadowed = [{ match: { method: ['GET', 'HEAD'] }, split: { v1: 90, v2: 10 } }];
    await config.putRoutes('catalog', shadowed);
    const revision = store.currentRevision;
    await expect(config.setSplit('catalog', { v2: 100 })).rejects.toBeInstanceOf(ShadowedSplitError);
    expect(store.currentRevision).toBe(revision);
    expect((await config.getRoutes('catalog'))!.value).toEqual(shadowed);
  });
});

describe('refusals that rest on the registry during the resync hold', () => {
  /** A MeshConfig whose resync hold lasts until `hold.until` (undefined: over). */
  async function held() {
    const store = await FileStore.open(tempDir());
    const registry = new StreamRegistry(1_000);
    const hold: { until?: number } = { until: Date.now() + 60_000 };
    const config = new MeshConfig(store, registry, { resyncEnds: () => hold.until });
    await config.putPolicy('catalog', { subsets: { stable: { track: 'stable' } } });
    return { store, registry, hold, config };
  }
  const caught = (promise: Promise<unknown>) => promise.then(() => undefined, (err: unknown) => err);

  it('are InstancesNotKnownErrors until the hold ends, then the ConfigErrors they were, writing nothing either way', async () => {
    const { store, hold, config } = await held();
    const revision = store.currentRevision;
    const split = await caught(config.setSplit('catalog', { stable: 90, v2: 10 }));
    expect(split).toBeInstanceOf(InstancesNotKnownError);
    expect(split).toMatchObject({ gap: { until: hold.until }, problems: ['v2: unknown subset "v2" of catalog: not declared in its policy and no instance has version=v2'] });
    expect((split as InstancesNotKnownError).gap.why).toMatch(/^the control plane is still resyncing with its sidecars after its start, .* until its resync hold ends at \S+Z \(in (59|60) s\)$/);
    expect(await caught(config.putRoutes('catalog', [{ split: { v2: 100 } }]))).toBeInstanceOf(InstancesNotKnownError);
    expect(await caught(config.apply({ routes: { catalog: [{ split: { v2: 100 } }] } }))).toBeInstanceOf(InstancesNotKnownError);
    expect(await caught(config.checkSplit('catalog', { v2: 100 }))).toBeInstanceOf(InstancesNotKnownError);
    // A declared subset with no healthy instance yet: its sidecars may not have reconnected.
    expect(await caught(config.healthyInstances('catalog', 'stable'))).toMatchObject({ name: 'InstancesNotKnownError', problems: ['stable: no healthy instance of subset stable of catalog is known yet'] });
    // What no instance could change is refused as before: weights that do not sum to 100.
    expect(await caught(config.setSplit('catalog', { stable: 90, v2: 20 }))).not.toBeInstanceOf(InstancesNotKnownError);
    expect(store.currentRevision).toBe(revision);

    hold.until = undefined;
    const after = await caught(config.setSplit('catalog', { stable: 90, v2: 10 }));
    expect(after).toBeInstanceOf(ConfigError);
    expect(after).not.toBeInstanceOf(InstancesNotKnownError);
    expect(await config.healthyInstances('catalog', 'stable')).toBe(0);
    expect(store.currentRevision).toBe(revision);
  });

  it('are InstancesNotKnownErrors too while Consul\'s catalog has not been read since the start, hold or not', async () => {
    const store = await FileStore.open(tempDir());
    const unread = "Consul's catalog at http://127.0.0.1:1 has not been read since the control plane started (ECONNREFUSED)";
    const catalog = Object.assign(new StreamRegistry(1_000), { unknown: (): string | undefined => unread });
    const config = new MeshConfig(store, catalog, { resyncEnds: () => undefined });
    const refused = await caught(config.setSplit('catalog', { v1: 100 }));
    expect(refused).toBeInstanceOf(InstancesNotKnownError);
    expect((refused as InstancesNotKnownError).gap.why).toBe(`${unread}, so no instance is known`);
    expect((refused as InstancesNotKnownError).gap.until - Date.now()).toBeLessThanOrEqual(5_000);
    expect(store.currentRevision).toBe(0);
  });

  it('let through what the instances known now allow', async () => {
    const { registry, config } = await held();
    registry.announce({ service: 'catalog', id: 'catalog-v2', address: '127.0.0.1', port: 15443, protocol: 'http', labels: { version: 'v2' } });
    expect((await config.setSplit('catalog', { stable: 90, v2: 10 })).value).toEqual([{ match: { pathPrefix: '/' }, split: { stable: 90, v2: 10 } }]);
    expect(await config.healthyInstances('catalog', 'v2')).toBe(1);
  });
});

describe('MeshConfig.healthyInstances', () => {
  it('counts the instances that receive traffic: healthy, and in warning as Consul\'s mesh routes them unless the policy says onlyPassing; not critical or disconnected ones', async () => {
    const instance = (id: string, health: Instance['health']): Instance => ({ service: 'catalog', id, address: '127.0.0.1', port: 8000, protocol: 'http', labels: { version: 'v2' }, health });
    const instances = [instance('a', 'healthy'), instance('b', 'warning'), instance('c', 'critical'), instance('d', 'disconnected')];
    const config = new MeshConfig(await FileStore.open(tempDir()), { instances: () => instances, onChange: () => () => {}, close: async () => {} });
    expect(await config.healthyInstances('catalog', 'v2')).toBe(2);
    await config.putPolicy('catalog', { onlyPassing: true });
    expect(await config.healthyInstances('catalog', 'v2')).toBe(1);
  });
});
