/**
 * Creates the data dir and its missing parents one level at a time. node's recursive mkdir
 * spins for ever (100% CPU) under /proc or /sys, whose mkdir answers ENOENT for a parent that
 * exists: a typo in `--data-dir` must fail the start, naming the directory, instead.
 */
import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

export async function makeDataDir(dataDir: string): Promise<void> {
  const missing: string[] = [];
  for (let dir = resolve(dataDir); ; dir = dirname(dir)) {
    try {
      if ((await stat(dir)).isDirectory()) break;
      throw new Error(`cannot use the data dir ${dataDir}: ${dir} is not a directory`);
    } catch (err) {
      // ENOTDIR: a parent is a file, which the walk up finds and names.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
    }
    missing.push(dir);
    if (dirname(dir) === dir) break;
  }
  for (const dir of missing.reverse()) {
    try {
      await mkdir(dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') throw new Error(`cannot create the data dir ${dataDir}: mkdir ${dir} failed (${code ?? (err as Error).message})`);
    }
  }
}
