/**
 * Static mode's config source: the snapshot file named by --config. It is read at start and
 * again on SIGHUP and whenever its directory changes: fs.watch on the directory of the path
 * given (so editors' and `mv`'s atomic renames are seen, and so is a Kubernetes ConfigMap
 * update, which swaps the `..data` symlink next to the file rather than touching the file's
 * own name) and, when the path is a symlink, on the directory of the file it resolves to
 * (followed as that changes), and on each directory holding a link met on the way (a chain of
 * links through other directories, a symlinked directory on the path: see linkDirs). Any event there is a reason to look: after a 100 ms debounce
 * the file is stat'ed (through symlinks) and re-read only when its (dev, inode, mtime, size)
 * changed, and applied only when its text did, so unrelated events cost a stat and log
 * nothing. A file that cannot be read (deleted, say) is logged and reported to `refused` (a
 * NACK) once until it can be read again. A file that fails validation (an empty one included: see parseSnapshot; being an
 * operator's file, it gets the checks of a write too: see `authored`) is refused with a log
 * line naming each fault's path, and the snapshot in force stays; at start, with none in
 * force, the refusal stops the sidecar (start() throws). SIGHUP re-reads and re-applies the
 * file whatever changed. A watch is on a directory's inode, not its name: it is dropped when
 * it reports that directory itself deleted or moved away (inotify's IN_DELETE_SELF and
 * IN_MOVE_SELF, which node gives as a 'rename' event naming the directory), and it is kept
 * with its directory's (dev, inode) and replaced when the name comes to mean another directory
 * (a whole directory swapped in by rename). The event is needed as well as the (dev, inode):
 * a directory deleted and made again at once is usually given the freed inode number back
 * (ext4, tmpfs), and a watch on the deleted one reports nothing more. While the path's
 * directory is missing nothing can be watched: that is logged once, and the file is looked at
 * every POLL_MS until the directory can be watched again (the config in force stays meanwhile),
 * so a directory deleted and made again is seen without SIGHUP. A load arms the watches before
 * it reads, so a change made between the two is an event rather than lost.
 */
import { watch, type FSWatcher } from 'node:fs';
import { lstat, open, readlink, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { ConfigError } from '../../common/config/parse.js';
import type { Logger } from '../../common/log.js';
import type { ConfigSource } from '../config-source.js';

const DEBOUNCE_MS = 100;
/** How often a file whose directory cannot be watched is looked at: soon enough to follow a recreated directory, rarely enough to cost nothing. */
const POLL_MS = 1_000;

/**
 * Adds to `out` the directory holding each symlink met while resolving `path`, the file's own
 * links and its directories' alike (each directory as it really is, free of links): a link
 * swapped there changes what the path means, so that directory is watched too. A ConfigMap's
 * links (`mesh.yaml` → `..data/mesh.yaml`, `..data` → `..2026_…`) are all in the path's own
 * directory; a chain through another directory (`app/mesh.yaml` → `mid/current.yaml` → …) or a
 * symlinked directory (`current` → `releases/N`, the old release kept) were not seen until
 * SIGHUP. Stops at the first missing component, and after 40 links (as the kernel does).
 */
async function linkDirs(path: string, out: Set<string>): Promise<void> {
  let pending = resolve(path);
  for (let hops = 0; hops < 40; hops++) {
    const parts = pending.split(sep).filter((p) => p !== '');
    let real: string = sep;
    let link = -1;
    for (let i = 0; i < parts.length; i++) {
      const next = join(real, parts[i]!);
      try {
        if ((await lstat(next)).isSymbolicLink()) {
          link = i;
          break;
        }
      } catch {
        return;
      }
      real = next;
    }
    if (link < 0) return;
    out.add(real);
    try {
      pending = resolve(real, await readlink(join(real, parts[link]!)), ...parts.slice(link + 1));
    } catch {
      return;
    }
  }
}

export class StaticFileConfigSource implements ConfigSource {
  readonly authored = true;
  private applied = false;
  private lastError: string | undefined;
  /** The refusal of `lastText`, if it was refused (restored when a failed read is followed by the same text). */
  private textError: string | undefined;
  /** Watched directories (the path's own, and its resolved file's when that differs), with the `dev:ino` watched. */
  private readonly watchers = new Map<string, { readonly watcher: FSWatcher; readonly id: string }>();
  /** Set while the path's own directory cannot be watched (which was logged): looks at the file instead. */
  private poll: NodeJS.Timeout | undefined;
  private timer: NodeJS.Timeout | undefined;
  private apply: ((raw: unknown) => void) | undefined;
  private refused: ((reason: string) => void) | undefined;
  private lastText: string | undefined;
  /** `dev:ino:mtime:size` of the file as last read, so an unrelated event in the directory costs a stat only. */
  private lastKey: string | undefined;
  /** Loads run one at a time, in order. */
  private loading: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly path: string;
  private readonly onHup = (): void => {
    this.logger.info({ file: this.path }, 'SIGHUP: reloading config');
    this.schedule(true);
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

  async start(apply: (raw: unknown) => void, refused: (reason: string) => void): Promise<void> {
    this.apply = apply;
    this.refused = refused;
    await this.schedule(true);
    // At start there is no last good snapshot to keep: the sidecar does not start on a file it refuses.
    if (!this.applied) {
      await this.close();
      throw new Error(this.status);
    }
    process.on('SIGHUP', this.onHup);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.stopPolling();
    for (const w of this.watchers.values()) w.watcher.close();
    this.watchers.clear();
    process.off('SIGHUP', this.onHup);
  }

  private schedule(force: boolean): Promise<void> {
    this.loading = this.loading.then(() => this.load(force));
    return this.loading;
  }

  private onEvent = (): void => {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.schedule(false), DEBOUNCE_MS);
  };

  /**
   * Watches the path's directory and its resolved file's directory (they differ when the path
   * is a symlink), dropping stale ones and replacing one whose name now means another directory.
   */
  private async rewatch(): Promise<void> {
    if (this.closed) return;
    const wanted = new Set([dirname(this.path)]);
    try {
      wanted.add(dirname(await realpath(this.path)));
    } catch {
      // Not there right now: the path's own directory tells when it comes back.
    }
    await linkDirs(this.path, wanted);
    for (const [dir, w] of this.watchers) {
      if (!wanted.has(dir)) this.unwatch(dir, w.watcher);
    }
    for (const dir of wanted) {
      let id: string;
      try {
        const st = await stat(dir);
        id = `${st.dev}:${st.ino}`;
      } catch (err) {
        this.unwatch(dir, this.watchers.get(dir)?.watcher);
        this.cannotWatch(dir, err);
        continue;
      }
      const current = this.watchers.get(dir);
      if (current?.id === id) continue;
      this.unwatch(dir, current?.watcher);
      let w: FSWatcher;
      try {
        w = watch(dir, (event, name) => {
          // The directory itself deleted or moved: this watch sees nothing more there, whatever inode
          // its successor gets, so the load this event schedules watches anew. A file in it of the
          // directory's own name looks the same and costs a needless re-watch, nothing more.
          if (event === 'rename' && (name === null || name === basename(dir))) this.unwatch(dir, w);
          this.onEvent();
        });
      } catch (err) {
        this.cannotWatch(dir, err);
        continue;
      }
      w.on('error', (err) => {
        this.unwatch(dir, w);
        this.cannotWatch(dir, err);
      });
      this.watchers.set(dir, { watcher: w, id });
      if (dir === dirname(this.path) && this.poll !== undefined) {
        this.stopPolling();
        this.logger.info({ dir, file: this.path }, `watching the config file's directory ${dir} again`);
      }
    }
  }

  private unwatch(dir: string, watcher: FSWatcher | undefined): void {
    if (watcher === undefined) return;
    watcher.close();
    if (this.watchers.get(dir)?.watcher === watcher) this.watchers.delete(dir);
  }

  /**
   * Said once until watching works again, and polled meanwhile (unref'd: it must not keep a
   * stopping sidecar alive); the resolved file's directory going away (an old ConfigMap
   * generation) is expected, and the path's own directory tells when the file comes back.
   */
  private cannotWatch(dir: string, err: unknown): void {
    if (dir !== dirname(this.path) || this.poll !== undefined || this.closed) return;
    this.logger.warn({ err, dir, file: this.path }, `cannot watch the config file's directory ${dir}: looking at the file every ${POLL_MS / 1000} s until it can`);
    this.poll = setInterval(() => void this.schedule(false), POLL_MS).unref();
  }

  private stopPolling(): void {
    clearInterval(this.poll);
    this.poll = undefined;
  }

  /** Reads and applies the file; `force` applies it even when it is unchanged. */
  private async load(force: boolean): Promise<void> {
    if (this.closed) return;
    // Before the read: a change made after it is then an event, not missed.
    await this.rewatch();
    let text: string;
    let key: string;
    try {
      const file = await open(this.path, 'r');
      try {
        // Stat'ed before the read: a change after it gives a new key, so it is read on its event.
        const st = await file.stat();
        key = `${st.dev}:${st.ino}:${st.mtimeMs}:${st.size}`;
        if (!force && key === this.lastKey) return;
        text = await file.readFile('utf8');
      } finally {
        await file.close();
      }
    } catch (err) {
      const error = `cannot read: ${(err as Error).message}`;
      // Every event in the directory (and every poll) comes here: say and count it once, not per
      // event; SIGHUP is an operator's reload, refused again.
      if (force || error !== this.lastError) {
        this.logger.error({ file: this.path }, `config file ${error}`);
        this.refused!(error);
      }
      this.lastError = error;
      this.lastKey = undefined;
      return;
    }
    this.lastKey = key;
    if (!force && text === this.lastText) {
      this.lastError = this.textError;
      return;
    }
    this.lastText = text;
    try {
      this.apply!(text);
      this.applied = true;
      this.lastError = this.textError = undefined;
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems : [(err as Error).message];
      this.lastError = this.textError = problems.join('; ');
      // At start there is no config in force to keep: start() stops the sidecar on this.
      const outcome = this.applied ? 'rejected, keeping the config in force' : 'rejected; not starting';
      this.logger.error({ file: this.path, problems }, `config file ${this.path} ${outcome}: ${problems.join('; ')}`);
    }
  }
}
