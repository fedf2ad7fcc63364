import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/index.js';
import { StreamRegistry } from '../registry/stream-registry.js';
import { FileStore } from '../store/file-store.js';
import { StoredConfigError } from '../store/stored-entries.js';
import { MeshConfig } from './mesh-config.js';

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
