import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SnapshotInput } from '../../common/config/schema.js';

/** A fresh temporary directory (under the OS temp dir) for one test's files. */
export function tempDir(prefix = 'skein-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * Writes a snapshot as JSON (or raw text, to test invalid files) to `path`, atomically
 * (write then rename), so a watching sidecar never reads half a file.
 */
export function writeConfigFile(path: string, snapshot: SnapshotInput | string): string {
  const text = typeof snapshot === 'string' ? snapshot : JSON.stringify(snapshot, null, 2);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
  return path;
}

/** Writes a snapshot to a new temp file and returns its path. */
export function writeTempConfig(snapshot: SnapshotInput | string, dir = tempDir()): string {
  return writeConfigFile(join(dir, 'skein.json'), snapshot);
}
