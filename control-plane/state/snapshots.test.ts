/**
 * The publisher while discovery does not know the instances yet (Consul's catalog never
 * read): snapshots are composed (stored config checked) but held from sidecars, writes say
 * they are not published, and the first snapshot after discovery knows them is published.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { tempDir } from '../../test/support/index.js';
import type { Discovery, Instance } from '../registry/discovery.js';
import { FileStore } from '../store/file-store.js';
import { MeshConfig } from './mesh-config.js';
import { SnapshotPublisher, type PublishedSnapshot } from './snapshots.js';

class UnreadCatalog implements Discovery {
  why: string | undefined = 'the catalog has not been read';
  list: Instance[] = [];
  private readonly listeners = new Set<() => void>();
  unknown(): string | undefined {
    return this.why;
  }
  instances(): readonly Instance[] {
    return this.list;
  }
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  read(list: Instance[]): void {
    this.why = undefined;
    this.list = list;
    for (const listener of this.listeners) listener();
  }
  async close(): Promise<void> {}
}

describe('SnapshotPublisher with discovery that does not know the instances yet', () => {
  it('holds every snapshot until it does, says writes are not published, then publishes them', async () => {
    const store = await FileStore.open(tempDir());
    const discovery = new UnreadCatalog();
    const config = new MeshConfig(store, discovery);
    const publisher = new SnapshotPublisher(config, store, discovery, { coalesceMs: 1, logger: createLogger('test', 'silent') });
    const pushed: PublishedSnapshot[] = [];
    publisher.onPublish((s) => pushed.push(s));
    await publisher.start();
    expect(publisher.current().held).toBe('the catalog has not been read');

    await config.putPolicy('catalog', { timeout: '4s' });
    await publisher.settled();
    expect(publisher.unpublished()).toBe('the catalog has not been read');
    expect(publisher.kept()).toBe('the snapshot they run');
    expect(pushed).toEqual([]);

    discovery.read([{ service: 'catalog', id: 'c1', address: '127.0.0.1', port: 8001, protocol: 'http', labels: { version: 'v1' }, health: 'healthy' }]);
    await publisher.settled();
    expect(publisher.unpublished()).toBeUndefined();
    expect(pushed).toHaveLength(1);
    expect(pushed[0]!.held).toBeUndefined();
    expect(pushed[0]!.body.services!.catalog).toMatchObject({ timeout: '4s', endpoints: [{ address: '127.0.0.1', port: 8001 }] });
    publisher.close();
  });
});

describe('SnapshotPublisher with a stored config too large for the push stream', () => {
  it('keeps the last snapshot and says why, as when the stored config cannot be composed', { timeout: 60_000 }, async () => {
    const store = await FileStore.open(tempDir());
    const discovery = new UnreadCatalog();
    discovery.read([]);
    const config = new MeshConfig(store, discovery);
    const publisher = new SnapshotPublisher(config, store, discovery, { coalesceMs: 1, logger: createLogger('test', 'silent') });
    const pushed: PublishedSnapshot[] = [];
    publisher.onPublish((s) => pushed.push(s));
    await publisher.start();
    const first = publisher.current().version;
    pushed.length = 0;

    // Written past the admin API's check, as two replicas writing at once can: each fits alone.
    const name = () => randomBytes(36 * 2 ** 20).toString('base64');
    await store.transaction([
      { op: 'put', key: 'routes/big1', value: [{ name: name() }] },
      { op: 'put', key: 'routes/big2', value: [{ name: name() }] },
    ]);
    await publisher.settled();
    expect(publisher.current().version).toBe(first);
    expect(pushed).toEqual([]);
    expect(publisher.unpublished()).toMatch(/^the stored config cannot be composed: the snapshot would be [\d.]+ MiB \(\d+ bytes\) on the push stream, more than the 64 MiB \(67108864 bytes\) a sidecar takes in one message$/);
    publisher.close();
  });
});
