/**
 * `--store consul`: the control plane's config in Consul KV under `skein/`, so several
 * replicas share it. A key's revision is its Consul `ModifyIndex`; conditional writes are
 * Consul check-and-set (`cas`, `delete-cas`) inside a transaction, which also hands back the
 * new ModifyIndex. Several keys written together are one Consul transaction (at most 64
 * operations, Consul's own limit), which other replicas see whole. A blocking query on the
 * whole prefix tells every replica about every change, its own and the others'.
 */
import { BlockingQuery } from '../../common/consul/blocking-query.js';
import { consulStatus, describeConsulError, type ConsulConnection } from '../../common/consul/client.js';
import type { Logger } from '../../common/log.js';
import { checkTransaction, NotJson, StoreConflictError, StoreLimitError, StoreUnavailableError, type ConfigStore, type StoreEntry, type StoreOp, type WriteCondition } from './store.js';

const PREFIX = 'skein/';
/** Consul refuses a transaction of more operations than this (agent/txn_endpoint.go, not configurable). */
const MAX_TXN_OPS = 64;
/**
 * How long one read or transaction may take. An agent that accepts connections but does not
 * answer (stopped, partitioned from its servers) would otherwise hold admin requests, and
 * their writes, for as long as the socket lives.
 */
const REQUEST_TIMEOUT_MS = 5_000;

interface KvPair {
  readonly Key: string;
  readonly Value: string | null;
  readonly ModifyIndex: number;
}

type Response = { headers: Record<string, string | undefined> };

export class ConsulStore implements ConfigStore {
  readonly location = `Consul KV under ${PREFIX}`;
  private readonly listeners = new Set<(key: string) => void>();
  private readonly seen = new Map<string, number>();
  private readonly watcher: BlockingQuery<KvPair[]>;

  private constructor(
    private readonly consul: ConsulConnection,
    logger: Logger,
  ) {
    this.watcher = new BlockingQuery({
      kind: 'index',
      request: async (req) => {
        const opts: Record<string, unknown> = { key: PREFIX, recurse: true, wait: req.wait, timeout: req.timeoutMs, ctx: req.ctx };
        if (req.cursor !== '') opts.index = req.cursor;
        const [res, data] = (await consul.client.kv.get(opts as never)) as unknown as [Response, KvPair[] | undefined];
        return { data: data ?? [], cursor: res.headers['x-consul-index'] };
      },
      onAnswer: (pairs: readonly KvPair[]) => this.diff(pairs),
      onError: (err, attempt) => {
        if (attempt === 1 || attempt % 20 === 0) logger.error({ attempt }, `watching ${PREFIX} in Consul KV failed: ${describeConsulError(err, consul)}; retrying`);
      },
    });
  }

  /** Opens the store; fails at once with a clear message when Consul cannot be read. */
  static async open(consul: ConsulConnection, logger: Logger): Promise<ConsulStore> {
    try {
      await consul.client.kv.get({ key: PREFIX, recurse: true, timeout: REQUEST_TIMEOUT_MS } as never);
    } catch (err) {
      throw new Error(`skein: --store consul: ${describeConsulError(err, consul)}`);
    }
    return new ConsulStore(consul, logger);
  }

  async get(key: string): Promise<StoreEntry | undefined> {
    const pair = (await this.request('read', (timeout) => this.consul.client.kv.get({ key: PREFIX + key, timeout } as never))) as unknown as KvPair | undefined;
    return pair ? entryOf(pair) : undefined;
  }

  async list(prefix: string): Promise<StoreEntry[]> {
    const pairs = (await this.request('read', (timeout) => this.consul.client.kv.get({ key: PREFIX + prefix, recurse: true, timeout } as never))) as unknown as KvPair[] | undefined;
    return (pairs ?? []).map(entryOf);
  }

  async put(key: string, value: unknown, condition?: WriteCondition): Promise<StoreEntry> {
    const [entry] = await this.transaction([{ op: 'put', key, value, condition }]);
    return entry!;
  }

  async delete(key: string, condition?: WriteCondition): Promise<boolean> {
    const current = await this.get(key);
    const expected = condition?.ifRevision;
    if (expected !== undefined && (current?.revision ?? 0) !== expected) throw new StoreConflictError(key, expected, current?.revision ?? 0);
    if (current === undefined) return false;
    // A transaction, not a single op read back: Consul answers a delete-cas with no result.
    await this.transaction([{ op: 'delete', key, condition: { ifRevision: current.revision } }]);
    return true;
  }

  async transaction(ops: readonly StoreOp[]): Promise<StoreEntry[]> {
    checkTransaction(ops);
    if (ops.length > MAX_TXN_OPS) {
      throw new StoreLimitError(`Consul KV takes at most ${MAX_TXN_OPS} operations in one transaction and this one needs ${ops.length} (a write per document, a check per service without both); apply the file in parts`);
    }
    const kvs = ops.map((op): Record<string, unknown> => {
      if (op.op === 'check') return op.revision === 0 ? { Verb: 'check-not-exists', Key: PREFIX + op.key } : { Verb: 'check-index', Key: PREFIX + op.key, Index: op.revision };
      if (op.op === 'delete') {
        const expected = op.condition?.ifRevision;
        // Consul's delete-cas with index 0 is not "only if absent": that case is a check.
        if (expected === undefined) return { Verb: 'delete', Key: PREFIX + op.key };
        return expected === 0 ? { Verb: 'check-not-exists', Key: PREFIX + op.key } : { Verb: 'delete-cas', Key: PREFIX + op.key, Index: expected };
      }
      const kv: Record<string, unknown> = { Verb: 'set', Key: PREFIX + op.key, Value: Buffer.from(JSON.stringify(op.value)).toString('base64') };
      if (op.condition?.ifRevision !== undefined) Object.assign(kv, { Verb: 'cas', Index: op.condition.ifRevision });
      return kv;
    });
    let results: readonly { KV: KvPair }[];
    try {
      const answer = (await this.request('write', (timeout) => this.consul.client.transaction.create(kvs.map((KV) => ({ KV })) as never, { timeout } as never))) as {
        Results?: { KV: KvPair }[] | null;
      };
      results = answer.Results ?? [];
    } catch (err) {
      // Consul rolls the whole transaction back and answers 409 when a check or cas fails.
      if (consulStatus(err) === 409) throw (await this.conflictAmong(ops)) ?? err;
      if (consulStatus(err) === 413) {
        // One value (a single PUT, checked against another key) or a whole apply file.
        const puts = ops.filter((op) => op.op === 'put');
        throw new StoreLimitError(puts.length === 1 ? tooLarge(err, `the value of ${puts[0]!.key}`) : `${tooLarge(err, 'this transaction')}; apply the file in parts`);
      }
      throw err;
    }
    const written = new Map(results.map((r) => [r.KV.Key, r.KV.ModifyIndex]));
    const entries = ops.flatMap((op): StoreEntry[] => {
      if (op.op !== 'put') return [];
      const revision = written.get(PREFIX + op.key);
      if (revision === undefined) throw new Error(`Consul transaction returned no result for ${op.key}`);
      return [{ key: op.key, value: structuredClone(op.value), revision }];
    });
    for (const entry of entries) this.notify(entry.key);
    for (const op of ops) if (op.op === 'delete') this.notify(op.key);
    return entries;
  }

  watch(listener: (key: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.listeners.clear();
    await this.watcher.stop();
  }

  /** The first op of a refused transaction whose revision no longer holds, as StoreConflictError. */
  private async conflictAmong(ops: readonly StoreOp[]): Promise<StoreConflictError | undefined> {
    for (const op of ops) {
      const expected = op.op === 'check' ? op.revision : op.condition?.ifRevision;
      if (expected === undefined) continue;
      const actual = (await this.get(op.key))?.revision ?? 0;
      if (actual !== expected) return new StoreConflictError(op.key, expected, actual);
    }
    return undefined;
  }

  /**
   * One request to Consul, bounded by REQUEST_TIMEOUT_MS. Consul out of reach, or answering
   * 5xx, becomes StoreUnavailableError saying whether a write may have been made; Consul's
   * other answers (a 409, a 413) are thrown as they are, for the caller to read.
   */
  private async request<T>(kind: 'read' | 'write', send: (timeoutMs: number) => Promise<T>): Promise<T> {
    try {
      return await send(REQUEST_TIMEOUT_MS);
    } catch (err) {
      const status = consulStatus(err);
      if (status !== undefined && status < 500) throw err;
      throw new StoreUnavailableError(unavailable(err, this.consul, kind));
    }
  }

  private diff(pairs: readonly KvPair[]): void {
    const now = new Map(pairs.map((p) => [p.Key.slice(PREFIX.length), p.ModifyIndex]));
    const changed: string[] = [];
    for (const [key, index] of now) if (this.seen.get(key) !== index) changed.push(key);
    for (const key of this.seen.keys()) if (!now.has(key)) changed.push(key);
    this.seen.clear();
    for (const [key, index] of now) this.seen.set(key, index);
    for (const key of changed) this.notify(key);
  }

  private notify(key: string): void {
    for (const listener of this.listeners) listener(key);
  }
}

function entryOf(pair: KvPair): StoreEntry {
  return { key: pair.Key.slice(PREFIX.length), value: pair.Value === null ? null : parsed(pair.Value), revision: pair.ModifyIndex };
}

/** A KV pair's value; one that is not JSON (written by hand) is left for the entry checks to name. */
function parsed(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    return new NotJson(text, (err as Error).message);
  }
}

/** Codes of a request that never reached Consul, and so wrote nothing. */
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/** Why Consul could not serve a request, and for a write whether it may have been made. */
function unavailable(err: unknown, consul: ConsulConnection, kind: 'read' | 'write'): string {
  const e = err as { isTimeout?: boolean; code?: string } | undefined;
  const reason = e?.isTimeout ? `Consul at ${consul.url} did not answer within ${REQUEST_TIMEOUT_MS / 1000} s` : describeConsulError(err, consul);
  if (kind === 'read') return reason;
  return e?.code !== undefined && NOT_CONNECTED.has(e.code)
    ? `${reason}; nothing was written`
    : `${reason}; the write may or may not have been made: read the current value before retrying`;
}

/**
 * Consul's 413 (a transaction over its `limits.txn_max_req_len`, 512 KB by default, with
 * values base64-encoded: about 384 KB of JSON) as a short sentence, with Consul's own words
 * (`Request body(854961 bytes) too large, max size: 524288`) and not the whole response.
 */
function tooLarge(err: unknown, what: string): string {
  const e = err as { message?: unknown; response?: { body?: unknown } } | undefined;
  const body = e?.response?.body;
  const said = (typeof body === 'string' && body.trim() !== '' ? body : typeof e?.message === 'string' ? e.message : '').trim().slice(0, 200);
  return `Consul refused ${what} as too large for one request${said === '' ? '' : ` (${said})`}: by default Consul takes at most 512 KB per transaction (its txn_max_req_len), values base64-encoded: about 384 KB of JSON`;
}
