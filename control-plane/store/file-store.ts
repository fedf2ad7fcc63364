/**
 * The default store: one JSON file in the data dir holding every key with its revision.
 * Each commit writes the whole state to a temporary file, fsyncs it, renames it over
 * `store.json` and fsyncs the directory, so after a crash the file is always some complete
 * earlier commit, never a torn one. Writes that arrive while a commit is on disk are
 * grouped into the next commit (one fsync for many writes) and applied in arrival order.
 * A transaction is one group within a commit: its conditions are checked together and its
 * writes land in that same commit or not at all, so it is atomic on disk and to watchers.
 * One process owns a data dir; replicas that share state use the Consul KV store.
 */
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { checkTransaction, StoreConflictError, type ConfigStore, type StoreEntry, type StoreOp, type WriteCondition } from './store.js';

interface Stored {
  value: unknown;
  revision: number;
}

interface FileFormat {
  format: 1;
  revision: number;
  entries: Record<string, Stored>;
}

interface KeyOp {
  key: string;
  /** undefined deletes the key. */
  value: unknown;
  condition?: WriteCondition;
  /** Only the condition: nothing is written. */
  checkOnly?: boolean;
}

/** One put, one delete, or one transaction's ops: all applied in one commit, or none. */
interface PendingOp {
  ops: KeyOp[];
  resolve: (results: (StoreEntry | boolean)[]) => void;
  reject: (err: Error) => void;
}

const FILE = 'store.json';

export class FileStore implements ConfigStore {
  private entries: Map<string, Stored>;
  private revision: number;
  private queue: PendingOp[] = [];
  private committing: Promise<void> | undefined;
  private readonly listeners = new Set<(key: string) => void>();

  private constructor(
    private readonly dir: string,
    state: FileFormat,
  ) {
    this.entries = new Map(Object.entries(state.entries));
    this.revision = state.revision;
  }

  static async open(dir: string): Promise<FileStore> {
    await mkdir(dir, { recursive: true });
    // A leftover temporary file is an uncommitted write from a crash (the control plane's
    // data-dir lock rules out a live writer): never part of the state.
    await rm(join(dir, `${FILE}.tmp`), { force: true });
    let state: FileFormat = { format: 1, revision: 0, entries: {} };
    try {
      state = JSON.parse(await readFile(join(dir, FILE), 'utf8')) as FileFormat;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`skein: cannot read the store ${join(dir, FILE)}: ${(err as Error).message}`);
    }
    if (state.format !== 1 || typeof state.revision !== 'number') throw new Error(`skein: ${join(dir, FILE)} is not a Skein store`);
    return new FileStore(dir, state);
  }

  get location(): string {
    return join(this.dir, FILE);
  }

  /** The revision of the last commit; each write increases it by one. */
  get currentRevision(): number {
    return this.revision;
  }

  async get(key: string): Promise<StoreEntry | undefined> {
    const stored = this.entries.get(key);
    return stored && { key, value: structuredClone(stored.value), revision: stored.revision };
  }

  async list(prefix: string): Promise<StoreEntry[]> {
    const out: StoreEntry[] = [];
    for (const [key, stored] of this.entries) {
      if (key.startsWith(prefix)) out.push({ key, value: structuredClone(stored.value), revision: stored.revision });
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : 1));
  }

  async put(key: string, value: unknown, condition?: WriteCondition): Promise<StoreEntry> {
    if (value === undefined) throw new TypeError('store values cannot be undefined');
    const [entry] = await this.enqueue([{ key, value: structuredClone(value), condition }]);
    return entry as StoreEntry;
  }

  async delete(key: string, condition?: WriteCondition): Promise<boolean> {
    const [existed] = await this.enqueue([{ key, value: undefined, condition }]);
    return existed as boolean;
  }

  async transaction(ops: readonly StoreOp[]): Promise<StoreEntry[]> {
    checkTransaction(ops);
    const results = await this.enqueue(
      ops.map((op): KeyOp => {
        if (op.op === 'put') return { key: op.key, value: structuredClone(op.value), condition: op.condition };
        if (op.op === 'delete') return { key: op.key, value: undefined, condition: op.condition };
        return { key: op.key, value: undefined, condition: { ifRevision: op.revision }, checkOnly: true };
      }),
    );
    return results.filter((_, i) => ops[i]!.op === 'put') as StoreEntry[];
  }

  watch(listener: (key: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    while (this.committing) await this.committing;
  }

  private enqueue(ops: KeyOp[]): Promise<(StoreEntry | boolean)[]> {
    return new Promise((resolve, reject) => {
      this.queue.push({ ops, resolve, reject });
      this.committing ??= this.commitLoop();
    });
  }

  private async commitLoop(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      await this.commit(batch);
    }
    this.committing = undefined;
  }

  private async commit(batch: PendingOp[]): Promise<void> {
    const next = new Map(this.entries);
    let revision = this.revision;
    const outcomes: { pending: PendingOp; results?: (StoreEntry | boolean)[]; error?: Error }[] = [];
    for (const pending of batch) {
      const conflict = pending.ops.find((op) => op.condition?.ifRevision !== undefined && op.condition.ifRevision !== (next.get(op.key)?.revision ?? 0));
      if (conflict) {
        outcomes.push({ pending, error: new StoreConflictError(conflict.key, conflict.condition!.ifRevision!, next.get(conflict.key)?.revision ?? 0) });
        continue;
      }
      const results = pending.ops.map((op): StoreEntry | boolean => {
        if (op.checkOnly) return false;
        if (op.value === undefined) {
          const existed = next.delete(op.key);
          if (existed) revision++;
          return existed;
        }
        revision++;
        next.set(op.key, { value: op.value, revision });
        return { key: op.key, value: structuredClone(op.value), revision };
      });
      outcomes.push({ pending, results });
    }
    if (revision !== this.revision) {
      try {
        await this.writeFile({ format: 1, revision, entries: Object.fromEntries(next) });
      } catch (err) {
        for (const { pending } of outcomes) pending.reject(err as Error);
        return;
      }
      this.entries = next;
      this.revision = revision;
    }
    const changed = new Set<string>();
    for (const { pending, results, error } of outcomes) {
      if (error) {
        pending.reject(error);
        continue;
      }
      pending.resolve(results!);
      pending.ops.forEach((op, i) => {
        if (results![i] !== false) changed.add(op.key);
      });
    }
    for (const key of changed) for (const listener of this.listeners) listener(key);
  }

  private async writeFile(state: FileFormat): Promise<void> {
    const tmp = join(this.dir, `${FILE}.tmp`);
    const file = await open(tmp, 'w', 0o600);
    try {
      await file.writeFile(JSON.stringify(state));
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, join(this.dir, FILE));
    const dir = await open(this.dir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}
