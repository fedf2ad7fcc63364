import { describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { tempDir } from '../../test/support/index.js';
import { StreamRegistry } from '../registry/stream-registry.js';
import { MeshConfig } from '../state/mesh-config.js';
import { SnapshotPublisher } from '../state/snapshots.js';
import { FileStore } from '../store/file-store.js';
import { SplitNotPublishedError } from './controller.js';
import { publishedSplit } from './publish-split.js';

describe('the rollout’s setSplit', () => {
  it('rejects a split stored while the stored config cannot be composed (sidecars never get it), and resolves once it can', async () => {
    const store = await FileStore.open(tempDir());
    const registry = new StreamRegistry(1_000);
    const config = new MeshConfig(store, registry);
    const publisher = new SnapshotPublisher(config, store, registry, { coalesceMs: 1, logger: createLogger('test', 'silent') });
    await config.putPolicy('catalog', { subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } } });
    await publisher.start();
    const setSplit = publishedSplit(config, publisher);
    await setSplit('catalog', { v1: 100 });
    const published = publisher.current().version;

    // Written past the API, as a hand edit of the store would be: routes must be a list.
    await store.put('routes/broken', 'garbage');
    const err = await setSplit('catalog', { v1: 50, v2: 50 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SplitNotPublishedError);
    expect((err as Error).message).toMatch(new RegExp(`^the split v1=50 v2=50 of catalog is stored but not published, so sidecars keep routing by snapshot ${published}, since the stored config cannot be composed: .*routes/broken`));
    expect((await config.getRoutes('catalog'))!.value).toEqual([{ match: { pathPrefix: '/' }, split: { v1: 50, v2: 50 } }]);
    expect(publisher.current().version).toBe(published);

    await store.delete('routes/broken');
    await setSplit('catalog', { v2: 100 });
    expect(JSON.parse(publisher.current().json).routes.catalog).toEqual([{ match: { pathPrefix: '/' }, split: { v2: 100 } }]);
    publisher.close();
  });
});
