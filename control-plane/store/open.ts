/** Opens the store `--store` names: the file store in the data dir, or Consul KV under `skein/`. */
import { FileStore } from './file-store.js';
import type { ConfigStore } from './store.js';

export type StoreKind = 'file' | 'consul';

export interface StoreOptions {
  readonly kind: StoreKind;
  readonly dataDir: string;
  readonly consul?: string;
}

export async function openStore(options: StoreOptions): Promise<ConfigStore> {
  switch (options.kind) {
    case 'file':
      return FileStore.open(options.dataDir);
    case 'consul':
      throw new Error('skein: --store consul is not available in this build yet; use --store file');
  }
}
