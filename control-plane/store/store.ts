/**
 * The control plane's durable state (policies, routes, intentions, bootstrap tokens) behind
 * one small key-value interface with per-key revisions and check-and-set, so the same code
 * runs on the file store in the data dir (one replica) and on Consul KV (several replicas
 * sharing `skein/`). Values are JSON; keys are slash-separated, e.g. `routes/catalog`.
 */
export interface StoreEntry {
  readonly key: string;
  readonly value: unknown;
  /** Increases on every write of this key; what the admin API serves as the ETag. */
  readonly revision: number;
}

export interface WriteCondition {
  /** Write only if the key's current revision is this one; 0 means "only if absent". */
  readonly ifRevision?: number;
}

/** One part of a transaction: write or delete a key (check-and-set when `condition` says so), or only require a key's revision. */
export type StoreOp =
  | { readonly op: 'put'; readonly key: string; readonly value: unknown; readonly condition?: WriteCondition }
  /** Removes `key` (nothing when it is absent and `condition` does not require it). */
  | { readonly op: 'delete'; readonly key: string; readonly condition?: WriteCondition }
  /** Fails the transaction unless `key` is at `revision` (0: unless it is absent); writes nothing. */
  | { readonly op: 'check'; readonly key: string; readonly revision: number };

export interface ConfigStore {
  /** Where the entries live, for messages that send an operator there (a file, or Consul KV). */
  readonly location: string;
  get(key: string): Promise<StoreEntry | undefined>;
  list(prefix: string): Promise<StoreEntry[]>;
  /** Throws StoreConflictError when `ifRevision` does not match. */
  put(key: string, value: unknown, condition?: WriteCondition): Promise<StoreEntry>;
  /** Resolves false when the key did not exist; throws StoreConflictError like put. */
  delete(key: string, condition?: WriteCondition): Promise<boolean>;
  /**
   * Several keys at once, all or nothing: when any check or condition fails it throws
   * StoreConflictError and writes nothing; otherwise every put and delete lands in one commit, which
   * readers and watchers (other replicas too) see whole. Resolves the puts' entries in order.
   * Each key appears at most once. A store may limit how many ops one transaction takes
   * (Consul: 64); beyond that it throws StoreLimitError, having written nothing.
   */
  transaction(ops: readonly StoreOp[]): Promise<StoreEntry[]>;
  /**
   * Calls `listener` after any key changes, including changes made by another replica.
   * Returns a function that stops the watch.
   */
  watch(listener: (key: string) => void): () => void;
  close(): Promise<void>;
}

export class StoreConflictError extends Error {
  override name = 'StoreConflictError';
  constructor(
    readonly key: string,
    readonly expected: number,
    readonly actual: number,
  ) {
    super(actual === 0 ? `${key} does not exist (expected revision ${expected})` : `${key} is at revision ${actual}, not ${expected}`);
  }
}

/** A transaction larger than the store can make atomic; nothing was written. */
export class StoreLimitError extends Error {
  override name = 'StoreLimitError';
}

/**
 * The store could not be reached, or did not answer in time. The message says whether a
 * write was made: a request that never connected wrote nothing, but one that timed out or
 * broke off may have been committed, and the caller must read before retrying.
 */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}

/**
 * A stored value that is not JSON (a hand-written Consul KV pair), kept as read rather than
 * thrown, so that the checks which read entries name its key like any other invalid entry.
 */
export class NotJson {
  constructor(
    readonly text: string,
    readonly reason: string,
  ) {}

  /** Served as what is stored, e.g. by a GET of the resource. */
  toJSON(): string {
    return this.text;
  }
}

/** Throws TypeError when a transaction names a key twice or puts undefined (a programming error, not a conflict). */
export function checkTransaction(ops: readonly StoreOp[]): void {
  const keys = new Set<string>();
  for (const op of ops) {
    if (keys.has(op.key)) throw new TypeError(`a transaction names ${op.key} twice`);
    keys.add(op.key);
    if (op.op === 'put' && op.value === undefined) throw new TypeError('store values cannot be undefined');
  }
}

/**
 * Waits before the next try of a write that lost a check-and-set race: a random delay that
 * doubles per try (full jitter, up to 10, 20, 40… ms), so writers that collided do not
 * collide again in lockstep and all but one come back refused (412).
 */
export function conflictBackoff(attempt: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * 2 ** Math.min(attempt - 1, 6)));
}

/** Read-modify-write with check-and-set, retried when another writer got in between. */
export async function updateEntry<T>(
  store: ConfigStore,
  key: string,
  change: (current: T | undefined) => T,
  attempts = 10,
): Promise<StoreEntry> {
  for (let i = 0; ; i++) {
    const current = await store.get(key);
    const next = change(current?.value as T | undefined);
    try {
      return await store.put(key, next, { ifRevision: current?.revision ?? 0 });
    } catch (err) {
      if (!(err instanceof StoreConflictError) || i >= attempts - 1) throw err;
    }
    await conflictBackoff(i + 1);
  }
}
