/**
 * The static config source on a real directory: a Kubernetes-style ConfigMap mount (the file
 * a symlink through the `..data` symlink, updated by swapping `..data` atomically) is seen;
 * a file reached through a symlink into another directory is seen when edited there; events
 * for other files cost a stat and apply or log nothing; SIGHUP re-applies; a refused file
 * keeps the config in force; a config directory swapped by rename is watched anew, and one
 * deleted keeps the config in force and is watched again when made again, without SIGHUP,
 * even made again at once (with the old inode number) or after a file stood in its place; a
 * deleted file keeps the config in force and is taken back when made again.
 */
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { tempDir, waitUntil } from '../../test/support/index.js';
import { StaticFileConfigSource } from './static-file-source.js';

const sources: StaticFileConfigSource[] = [];
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(sources.splice(0).map((s) => s.close()));
});

function start(path: string) {
  const logs: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(line) });
  const applied: string[] = [];
  const refused: string[] = [];
  const source = new StaticFileConfigSource(path, logger);
  sources.push(source);
  const apply = (raw: unknown): void => {
    if (String(raw).includes('invalid')) throw new Error('invalid snapshot');
    applied.push(String(raw));
  };
  return { source, logs, applied, refused, started: source.start(apply, (reason) => void refused.push(reason)) };
}

/** The debounced load that an event scheduled, run now (fake timers), and awaited. */
async function runPendingLoad(source: StaticFileConfigSource): Promise<void> {
  const deadline = Date.now() + 10_000;
  // fs.watch delivers on the event loop: poll (with setImmediate, which is not faked) until the debounce timer is set.
  while (vi.getTimerCount() === 0) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a watch event');
    await new Promise((resolve) => setImmediate(resolve));
  }
  vi.advanceTimersByTime(100);
  await (source as unknown as { loading: Promise<void> }).loading;
}

/** A source started on `root/config/mesh.yaml` (version 1). */
async function startInConfigDir() {
  const root = tempDir();
  const dir = join(root, 'config');
  mkdirSync(dir);
  writeFileSync(join(dir, 'mesh.yaml'), 'version: "1"\n');
  const started = start(join(dir, 'mesh.yaml'));
  await started.started;
  return { root, dir, ...started };
}

/** A source started on `root/config/mesh.yaml` (version 1), once it has said that the deleted `config` cannot be watched. */
async function startThenDeleteDir() {
  const started = await startInConfigDir();
  rmSync(started.dir, { recursive: true });
  await waitUntil(() => started.logs.join('').includes('cannot watch'), { what: 'the lost watch to be logged' });
  return started;
}

/** Writes versions 2 and then 3 of `dir/mesh.yaml`, each once the one before was applied, and checks both were. */
async function editTwice(dir: string, applied: string[]): Promise<void> {
  writeFileSync(join(dir, 'mesh.yaml'), 'version: "2"\n');
  await waitUntil(() => applied.length === 2, { what: 'version 2 to be applied' });
  writeFileSync(join(dir, 'mesh.yaml'), 'version: "3"\n');
  await waitUntil(() => applied.length === 3, { what: 'version 3, written later, to be applied' });
  expect(applied.slice(1)).toEqual(['version: "2"\n', 'version: "3"\n']);
}

/** The source's poll timer, set while it looks at the file for want of a watch. */
const pollOf = (source: StaticFileConfigSource): NodeJS.Timeout | undefined => (source as unknown as { poll?: NodeJS.Timeout }).poll;

describe('StaticFileConfigSource', () => {
  it('sees a ConfigMap update: the ..data symlink swapped atomically next to the file', async () => {
    const cm = tempDir();
    for (const gen of ['..data1', '..data2']) mkdirSync(join(cm, gen));
    writeFileSync(join(cm, '..data1', 'mesh.yaml'), 'version: "1"\n');
    writeFileSync(join(cm, '..data2', 'mesh.yaml'), 'version: "2"\n');
    symlinkSync('..data1', join(cm, '..data'));
    symlinkSync('..data/mesh.yaml', join(cm, 'mesh.yaml'));
    const { applied, started, logs } = start(join(cm, 'mesh.yaml'));
    await started;
    expect(applied).toEqual(['version: "1"\n']);

    symlinkSync('..data2', join(cm, '..data.tmp'));
    renameSync(join(cm, '..data.tmp'), join(cm, '..data'));
    await waitUntil(() => applied.length === 2, { what: 'the swapped ConfigMap to be applied' });
    expect(applied[1]).toBe('version: "2"\n');
    expect(logs.join('')).not.toMatch(/cannot|rejected/);
  });

  it('sees an in-place edit of the file a symlinked path resolves to, in another directory', async () => {
    const real = tempDir();
    const linked = tempDir();
    writeFileSync(join(real, 'mesh.yaml'), 'version: "1"\n');
    symlinkSync(join(real, 'mesh.yaml'), join(linked, 'mesh.yaml'));
    const { applied, started } = start(join(linked, 'mesh.yaml'));
    await started;
    writeFileSync(join(real, 'mesh.yaml'), 'version: "2"\n');
    await waitUntil(() => applied.length === 2, { what: 'the edit to be applied' });
    expect(applied[1]).toBe('version: "2"\n');
  });

  it('sees a symlink swapped in another directory part-way along the path\'s chain of links (app/mesh.yaml → mid/current.yaml → real/a.yaml)', async () => {
    const root = tempDir();
    for (const d of ['app', 'mid', 'real']) mkdirSync(join(root, d));
    writeFileSync(join(root, 'real', 'a.yaml'), 'version: "1"\n');
    writeFileSync(join(root, 'real', 'b.yaml'), 'version: "2"\n');
    symlinkSync(join(root, 'real', 'a.yaml'), join(root, 'mid', 'current.yaml'));
    symlinkSync(join(root, 'mid', 'current.yaml'), join(root, 'app', 'mesh.yaml'));
    const { applied, started } = start(join(root, 'app', 'mesh.yaml'));
    await started;
    symlinkSync(join(root, 'real', 'b.yaml'), join(root, 'mid', 'next.yaml'));
    renameSync(join(root, 'mid', 'next.yaml'), join(root, 'mid', 'current.yaml'));
    await waitUntil(() => applied.length === 2, { what: 'the retargeted link to be applied' });
    expect(applied[1]).toBe('version: "2"\n');
  });

  it('sees a symlinked directory on the path swapped (a deploy\'s `current` → releases/N), the old release kept', async () => {
    const root = tempDir();
    for (const d of ['r1', 'r2']) mkdirSync(join(root, 'releases', d), { recursive: true });
    writeFileSync(join(root, 'releases', 'r1', 'mesh.yaml'), 'version: "1"\n');
    writeFileSync(join(root, 'releases', 'r2', 'mesh.yaml'), 'version: "2"\n');
    symlinkSync(join(root, 'releases', 'r1'), join(root, 'current'));
    const { applied, started } = start(join(root, 'current', 'mesh.yaml'));
    await started;
    symlinkSync(join(root, 'releases', 'r2'), join(root, 'current.tmp'));
    renameSync(join(root, 'current.tmp'), join(root, 'current'));
    await waitUntil(() => applied.length === 2, { what: 'the swapped release to be applied' });
    expect(applied[1]).toBe('version: "2"\n');
  });

  it('applies and logs nothing for events about other files, or a rewrite with the same text', async () => {
    const dir = tempDir();
    const path = join(dir, 'mesh.yaml');
    writeFileSync(path, 'version: "1"\n');
    const { source, applied, started, logs } = start(path);
    await started;
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const before = logs.length;

    writeFileSync(join(dir, 'other.txt'), 'x');
    await runPendingLoad(source);
    writeFileSync(path, 'version: "1"\n'); // same text, new mtime
    await runPendingLoad(source);
    expect(applied).toEqual(['version: "1"\n']);
    expect(logs.slice(before)).toEqual([]);

    writeFileSync(path, 'version: "2"\n');
    await runPendingLoad(source);
    expect(applied).toEqual(['version: "1"\n', 'version: "2"\n']);
  });

  it('keeps the config in force while the file is deleted, saying so and refusing once, and takes it back when made again, without SIGHUP', async () => {
    const dir = tempDir();
    const path = join(dir, 'mesh.yaml');
    writeFileSync(path, 'version: "1"\n');
    const { source, applied, refused, started, logs } = start(path);
    await started;
    rmSync(path);
    await waitUntil(() => source.status.includes('cannot read'), { what: 'the deleted file to be seen' });
    expect(source.hasSnapshot).toBe(true);
    expect(refused).toEqual([expect.stringMatching(/^cannot read: ENOENT/)]);
    // Events while it stays missing look at it again, and refuse nothing more.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    for (const name of ['other.txt', 'another.txt']) {
      writeFileSync(join(dir, name), 'x');
      await runPendingLoad(source);
    }
    vi.useRealTimers();
    expect(refused).toHaveLength(1);
    // Made again as it was: nothing to apply, and the status is the file's again.
    writeFileSync(path, 'version: "1"\n');
    await waitUntil(() => source.status === `config from ${path}`, { what: 'the file made again to be read' });
    expect(applied).toEqual(['version: "1"\n']);
    rmSync(path);
    await waitUntil(() => source.status.includes('cannot read'), { what: 'the file deleted again to be seen' });
    writeFileSync(path, 'version: "2"\n');
    await waitUntil(() => applied.length === 2, { what: 'the file made again with other text to be applied' });
    expect(applied[1]).toBe('version: "2"\n');
    expect(logs.filter((l) => l.includes('cannot read'))).toHaveLength(2);
    expect(refused).toHaveLength(2);
  });

  it('re-applies on SIGHUP, and keeps the config in force when the file is refused', async () => {
    const dir = tempDir();
    const path = join(dir, 'mesh.yaml');
    writeFileSync(path, 'version: "1"\n');
    const { source, applied, started, logs } = start(path);
    await started;
    process.emit('SIGHUP', 'SIGHUP');
    await waitUntil(() => applied.length === 2, { what: 'the SIGHUP reload' });
    expect(logs.join('')).toContain('SIGHUP: reloading config');

    writeFileSync(path, 'invalid\n');
    await waitUntil(() => source.status.includes('rejected'), { what: 'the invalid file to be refused' });
    expect(source.status).toBe(`config file ${path} rejected: invalid snapshot`);
    expect(source.hasSnapshot).toBe(true);
    expect(applied).toHaveLength(2);
  });

  it('watches a directory swapped in by rename (mv dir old; mv new dir), and its later edits', async () => {
    const { root, dir, applied, logs } = await startInConfigDir();
    mkdirSync(join(root, 'new'));
    writeFileSync(join(root, 'new', 'mesh.yaml'), 'version: "2"\n');
    renameSync(dir, join(root, 'old'));
    renameSync(join(root, 'new'), dir);
    await waitUntil(() => applied.length === 2, { what: 'the swapped-in directory\'s file to be applied' });
    writeFileSync(join(dir, 'mesh.yaml'), 'version: "3"\n');
    await waitUntil(() => applied.length === 3, { what: 'an edit in the swapped-in directory to be applied' });
    expect(applied[2]).toBe('version: "3"\n');
    expect(logs.join('')).not.toMatch(/cannot watch/);
  });

  it('watches a directory deleted and made again at once (given its old inode number back), and its later edits', async () => {
    const { dir, applied, logs } = await startInConfigDir();
    // `rm -rf config && mkdir config`: ext4 and tmpfs hand the freed inode number straight back,
    // so the new directory has the (dev, inode) of the one the watch was on.
    rmSync(dir, { recursive: true });
    mkdirSync(dir);
    await editTwice(dir, applied);
    expect(logs.join('')).not.toMatch(/cannot watch/);
  });

  it('watches a directory replaced by a file and then by a directory again, and its later edits', async () => {
    const { dir, applied, logs } = await startInConfigDir();
    rmSync(dir, { recursive: true });
    writeFileSync(dir, 'not a directory\n');
    await waitUntil(() => logs.join('').includes('ENOTDIR'), { what: 'the file in the directory\'s place to be read' });
    rmSync(dir);
    mkdirSync(dir);
    await editTwice(dir, applied);
  });

  it('keeps the config in force while its directory is deleted, refusing once however often it looks, and sees it made again by itself', async () => {
    const { dir, source, applied, refused, logs } = await startThenDeleteDir();
    expect(source.hasSnapshot).toBe(true);
    expect(applied).toEqual(['version: "1"\n']);
    const looks = vi.spyOn(source as unknown as { load: () => Promise<void> }, 'load');
    await waitUntil(() => looks.mock.calls.length >= 2, { what: 'two more looks at the missing file' });
    await (source as unknown as { loading: Promise<void> }).loading;
    expect(refused).toEqual([expect.stringMatching(/^cannot read: ENOENT/)]);

    // The directory first, the file a moment later, as a restore or a re-mount makes them.
    mkdirSync(dir);
    await waitUntil(() => logs.join('').includes('watching the config file\'s directory'), { what: 'the directory to be watched again' });
    await editTwice(dir, applied);
    expect(logs.join('').match(/cannot watch/g)).toHaveLength(1);
    expect(pollOf(source)).toBeUndefined();
  });

  it('sees a deleted directory made again with its file already in it, and stops looking when closed', async () => {
    const { root, dir, source, applied } = await startThenDeleteDir();
    mkdirSync(join(root, 'restored'));
    writeFileSync(join(root, 'restored', 'mesh.yaml'), 'version: "2"\n');
    renameSync(join(root, 'restored'), dir);
    await waitUntil(() => applied.length === 2, { what: 'the restored directory\'s file to be applied' });

    rmSync(dir, { recursive: true });
    await waitUntil(() => pollOf(source), { what: 'looking at the file again' });
    await source.close();
    expect(pollOf(source)).toBeUndefined();
  });
});
