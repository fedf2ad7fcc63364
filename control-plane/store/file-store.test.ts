import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot, tempDir, waitUntil } from '../../test/support/index.js';
import { FileStore } from './file-store.js';
import { StoreConflictError, updateEntry } from './store.js';

describe('FileStore', () => {
  it('persists writes with increasing revisions and reloads them', async () => {
    const dir = tempDir();
    const store = await FileStore.open(dir);
    const a = await store.put('routes/catalog', [{ split: { v1: 100 } }]);
    const b = await store.put('policies/catalog', { timeout: '2s' });
    expect(b.revision).toBeGreaterThan(a.revision);
    expect(await store.delete('policies/catalog')).toBe(true);
    expect(await store.delete('policies/catalog')).toBe(false);
    const reopened = await FileStore.open(dir);
    expect(await reopened.get('routes/catalog')).toEqual({ key: 'routes/catalog', value: [{ split: { v1: 100 } }], revision: a.revision });
    expect(await reopened.get('policies/catalog')).toBeUndefined();
    expect(reopened.currentRevision).toBe(3);
  });

  it('check-and-set refuses a stale revision and only-create refuses an existing key', async () => {
    const store = await FileStore.open(tempDir());
    const first = await store.put('intentions', { defaultAction: 'deny' }, { ifRevision: 0 });
    await expect(store.put('intentions', {}, { ifRevision: 0 })).rejects.toBeInstanceOf(StoreConflictError);
    await store.put('intentions', { defaultAction: 'allow' }, { ifRevision: first.revision });
    await expect(store.put('intentions', {}, { ifRevision: first.revision })).rejects.toThrow(/is at revision 2, not 1/);
    await expect(store.delete('intentions', { ifRevision: first.revision })).rejects.toBeInstanceOf(StoreConflictError);
  });

  it('read-modify-write loses no update under concurrency', async () => {
    const store = await FileStore.open(tempDir());
    await Promise.all(Array.from({ length: 20 }, () => updateEntry<number>(store, 'counter', (n) => (n ?? 0) + 1, 50)));
    expect((await store.get('counter'))!.value).toBe(20);
  });

  it('notifies watchers after a commit, and returns copies callers cannot corrupt', async () => {
    const store = await FileStore.open(tempDir());
    const seen: string[] = [];
    store.watch((key) => seen.push(key));
    const value = { rules: [1] };
    await store.put('a', value);
    value.rules.push(2);
    const read = await store.get('a');
    (read!.value as { rules: number[] }).rules.push(3);
    expect((await store.get('a'))!.value).toEqual({ rules: [1] });
    expect(seen).toEqual(['a']);
  });

  it('a transaction writes all its keys in one commit, or none when a check or condition fails', async () => {
    const dir = tempDir();
    const store = await FileStore.open(dir);
    const policy = await store.put('policies/catalog', { subsets: { v1: {} } });
    const seen: string[] = [];
    store.watch((key) => seen.push(`${key}@${store.currentRevision}`));

    // A stale condition, or a check of a key that changed, refuses the whole transaction.
    await expect(
      store.transaction([
        { op: 'put', key: 'policies/catalog', value: { subsets: {} }, condition: { ifRevision: policy.revision } },
        { op: 'put', key: 'routes/catalog', value: [], condition: { ifRevision: 7 } },
      ]),
    ).rejects.toThrow(new StoreConflictError('routes/catalog', 7, 0));
    await expect(
      store.transaction([
        { op: 'put', key: 'routes/catalog', value: [] },
        { op: 'check', key: 'policies/catalog', revision: 0 },
      ]),
    ).rejects.toBeInstanceOf(StoreConflictError);
    expect(await store.list('')).toEqual([{ key: 'policies/catalog', value: { subsets: { v1: {} } }, revision: policy.revision }]);
    expect(seen).toEqual([]);

    const written = await store.transaction([
      { op: 'put', key: 'policies/catalog', value: { subsets: { v2: {} } }, condition: { ifRevision: policy.revision } },
      { op: 'check', key: 'routes/orders', revision: 0 },
      { op: 'put', key: 'routes/catalog', value: [{ split: { v2: 100 } }], condition: { ifRevision: 0 } },
      { op: 'put', key: 'intentions', value: { defaultAction: 'deny' } },
    ]);
    expect(written.map((e) => [e.key, e.revision])).toEqual([['policies/catalog', 2], ['routes/catalog', 3], ['intentions', 4]]);
    // Watchers hear of each written key once, after all of them are in.
    expect(seen).toEqual(['policies/catalog@4', 'routes/catalog@4', 'intentions@4']);
    const reopened = await FileStore.open(dir);
    expect(await reopened.list('')).toEqual([
      { key: 'intentions', value: { defaultAction: 'deny' }, revision: 4 },
      { key: 'policies/catalog', value: { subsets: { v2: {} } }, revision: 2 },
      { key: 'routes/catalog', value: [{ split: { v2: 100 } }], revision: 3 },
    ]);
    await expect(store.transaction([{ op: 'put', key: 'a', value: 1 }, { op: 'check', key: 'a', revision: 0 }])).rejects.toThrow(/names a twice/);

    // A delete is part of the transaction: refused with it, made with it.
    await expect(
      store.transaction([
        { op: 'delete', key: 'policies/catalog', condition: { ifRevision: 2 } },
        { op: 'check', key: 'routes/catalog', revision: 2 },
      ]),
    ).rejects.toThrow(new StoreConflictError('routes/catalog', 2, 3));
    await expect(store.transaction([{ op: 'delete', key: 'policies/catalog', condition: { ifRevision: 1 } }])).rejects.toThrow(new StoreConflictError('policies/catalog', 1, 2));
    expect((await store.get('policies/catalog'))?.revision).toBe(2);
    seen.length = 0;
    expect(await store.transaction([{ op: 'delete', key: 'policies/catalog', condition: { ifRevision: 2 } }, { op: 'check', key: 'routes/catalog', revision: 3 }])).toEqual([]);
    expect(await store.get('policies/catalog')).toBeUndefined();
    expect(seen).toEqual(['policies/catalog@5']);
    expect((await FileStore.open(dir)).currentRevision).toBe(5);
  });

  it('refuses to open a file that is not a store', async () => {
    const dir = tempDir();
    await writeFile(join(dir, 'store.json'), '{"hello": 1}');
    await expect(FileStore.open(dir)).rejects.toThrow(/is not a Skein store/);
  });

  it('a kill -9 during a burst of writes leaves a prefix of the writes that loads cleanly', async () => {
    for (let round = 0; round < 3; round++) {
      const dir = tempDir();
      const writer = spawn(process.execPath, [join(repoRoot, 'dist/test/control-plane/fixtures/store-writer.js'), dir], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      writer.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      const exited = new Promise((resolve) => writer.once('exit', resolve));
      const target = 40 + Math.floor(Math.random() * 200);
      await waitUntil(() => out.split('\n').length > target, { timeoutMs: 20_000, intervalMs: 2, what: `${target} acknowledged writes` });
      writer.kill('SIGKILL');
      await exited;
      const acked = out.split('\n').filter((l) => /^\d+$/.test(l)).map(Number);
      const lastAcked = Math.max(...acked);

      const store = await FileStore.open(dir);
      const revision = store.currentRevision;
      // Every acknowledged write survived; nothing beyond what was submitted appears.
      expect(revision).toBeGreaterThanOrEqual(lastAcked);
      expect(revision).toBeLessThanOrEqual(lastAcked + 10);
      // The state is exactly writes 1..revision applied in order.
      for (let k = 0; k < 7; k++) {
        let expected = 0;
        for (let i = 1; i <= revision; i++) if (i % 7 === k) expected = i;
        const entry = await store.get(`k${k}`);
        expect(entry === undefined ? 0 : (entry.value as { i: number }).i, `k${k} at revision ${revision}`).toBe(expected);
        if (entry) expect(entry.revision).toBe(expected);
      }
      expect(JSON.parse(await readFile(join(dir, 'store.json'), 'utf8')).revision).toBe(revision);
    }
  });
});
