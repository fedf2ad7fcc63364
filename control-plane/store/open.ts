/** Opens the store `--store` names: the file store in the data dir, or Consul KV under `skein/`. */
import type { ConsulConnection } from '../../common/consul/client.js';
import type { Logger } from '../../common/log.js';
import { ConsulStore } from './consul-store.js';
import { FileStore } from './file-store.js';
import type { ConfigStore } from './store.js';

export type StoreKind = 'file' | 'consul';

export interface StoreOptions {
  readonly kind: StoreKind;
  readonly dataDir: string;
  /** The connection `--consul` opened; required for the consul store. */
  readonly consul?: ConsulConnection;
  readonly logger: Logger;
}

export async function openStore(options: StoreOptions): Promise<ConfigStore> {
  switch (options.kind) {
    case 'file':
      return FileStore.open(options.dataDir);
    case 'consul':
      if (!options.consul) throw new Error('skein: --store consul needs --consul URL (or CONSUL_HTTP_ADDR)');
      return ConsulStore.open(options.consul, options.logger);
  }
}
