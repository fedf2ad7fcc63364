/**
 * Static mode's config source: the snapshot file named by --config. It is read at start and
 * again on SIGHUP and whenever the file changes (fs.watch on its directory, so editors and
 * atomic renames that replace the file are seen; changes are debounced). A file that fails
 * validation (an empty one included: see parseSnapshot) is refused with a log line naming
 * each fault's path, and the snapshot in force stays; at start, with none in force, the
 * refusal stops the sidecar (start() throws).
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { ConfigError } from '../../common/config/parse.js';
import type { Logger } from '../../common/log.js';
import type { ConfigSource } from '../config-source.js';

const DEBOUNCE_MS = 100;

export class StaticFileConfigSource implements ConfigSource {
  private applied = false;
  private lastError: string | undefined;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private apply: ((raw: unknown) => void) | undefined;
  private lastText: string | undefined;
  private readonly path: string;
  private readonly onHup = (): void => {
    this.logger.info({ file: this.path }, 'SIGHUP: reloading config');
    void this.load(true);
  };

  constructor(
    path: string,
    private readonly logger: Logger,
  ) {
    this.path = resolve(path);
  }

  get hasSnapshot(): boolean {
    return this.applied;
  }

  get status(): string {
    if (this.lastError !== undefined) return `config file ${this.path} rejected: ${this.lastError}`;
    return this.applied ? `config from ${this.path}` : `reading config file ${this.path}`;
  }

  async start(apply: (raw: unknown) => void): Promise<void> {
    this.apply = apply;
    await this.load(true);
    // At start there is no last good snapshot to keep: the sidecar does not start on a file it refuses.
    if (!this.applied) throw new Error(this.status);
    const name = basename(this.path);
    this.watcher = watch(dirname(this.path), (_event, file) => {
      if (file !== null && file !== name) return;
      clearTimeout(this.timer);
      this.timer = setTimeout(() => void this.load(false), DEBOUNCE_MS);
    });
    this.watcher.on('error', (err) => this.logger.warn({ err, file: this.path }, 'cannot watch config file; reload with SIGHUP'));
    process.on('SIGHUP', this.onHup);
  }

  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.watcher?.close();
    process.off('SIGHUP', this.onHup);
  }

  /** Reads and applies the file; `force` applies it even when its text is unchanged. */
  private async load(force: boolean): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      this.lastError = `cannot read: ${(err as Error).message}`;
      this.logger.error({ file: this.path }, `config file ${this.lastError}`);
      return;
    }
    if (!force && text === this.lastText) return;
    this.lastText = text;
    try {
      this.apply!(text);
      this.applied = true;
      this.lastError = undefined;
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems : [(err as Error).message];
      this.lastError = problems.join('; ');
      this.logger.error({ file: this.path, problems }, `config file ${this.path} rejected, keeping the config in force: ${problems.map((p) => `${p}`).join('; ')}`);
    }
  }
}
