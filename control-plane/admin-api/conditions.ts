/**
 * Optimistic concurrency for the admin API: GET answers an ETag (the resource's store
 * revision); a write with `If-Match: "<etag>"` succeeds only if nobody wrote the resource
 * since, and `If-None-Match: *` only creates. Writes without either are last-writer-wins.
 */
import type { IncomingMessage } from 'node:http';
import type { ResyncHold } from '../state/registry-gap.js';
import type { SnapshotPublisher } from '../state/snapshots.js';
import type { StoreEntry, WriteCondition } from '../store/store.js';
import { ApiError } from './errors.js';

export function etag(revision: number): string {
  return `"${revision}"`;
}

export function entryHeaders(entry: StoreEntry, snapshotVersion?: string): Record<string, string> {
  return { etag: etag(entry.revision), ...(snapshotVersion ? { 'skein-snapshot-version': snapshotVersion } : {}) };
}

/** The store condition a request asks for; `current` reads the resource's revision (0 if absent) for `If-Match: *`. */
export async function writeCondition(req: IncomingMessage, current: () => Promise<number>): Promise<WriteCondition | undefined> {
  const ifMatch = header(req, 'if-match');
  const ifNoneMatch = header(req, 'if-none-match');
  if (ifMatch !== undefined && ifNoneMatch !== undefined) throw new ApiError('bad-request', 'give If-Match or If-None-Match, not both');
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch !== '*') throw new ApiError('bad-request', 'If-None-Match on a write must be "*" (create only)');
    return { ifRevision: 0 };
  }
  if (ifMatch === undefined) return undefined;
  if (ifMatch === '*') {
    const revision = await current();
    if (revision === 0) throw new ApiError('precondition-failed', 'the resource does not exist (If-Match: *)');
    return { ifRevision: revision };
  }
  const m = /^(?:W\/)?"?(\d+)"?$/.exec(ifMatch);
  if (!m) throw new ApiError('bad-request', `If-Match must be an ETag from a GET, e.g. "12" (got ${ifMatch})`);
  return { ifRevision: Number(m[1]) };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === 'string' ? value.trim() : undefined;
}

/**
 * After a write is stored: waits for the snapshot to follow and says whether it did. When the
 * stored config cannot be composed (another stored entry is refused), or snapshots are held
 * until Consul's catalog is read, the write stays stored (it is in force for the next
 * snapshot published) but sidecars keep the snapshot they run: the answer
 * says so with `published: false`, a `warning`, and an HTTP `Warning: 299` header, which
 * kubectl-style clients print. During the resync hold after a start (`hold`) it is published,
 * but sidecars that reconnected running a snapshot get it only when the hold ends: the answer
 * says when, in `Skein-Held-Until` (`heldUntil`) and a warning.
 */
export async function afterWrite(
  publisher: SnapshotPublisher,
  hold?: ResyncHold,
): Promise<{ version: string; headers: Record<string, string>; fields: { published: boolean; warning?: string; heldUntil?: string } }> {
  await publisher.settled();
  const version = publisher.current().version;
  const why = publisher.unpublished();
  if (why === undefined) {
    const until = hold?.holdEnds();
    if (until === undefined) return { version, headers: { 'skein-snapshot-version': version }, fields: { published: true } };
    const at = new Date(until).toISOString();
    const warning =
      `published, but sidecars that reconnected running a snapshot keep it until the resync hold after the control plane's start ends at ${at} ` +
      `(in ${Math.ceil((until - Date.now()) / 1000)} s), and get this write then`;
    return { version, headers: { 'skein-snapshot-version': version, 'skein-held-until': at, warning: warningHeader(warning) }, fields: { published: true, heldUntil: at, warning } };
  }
  const warning = `stored but not published: sidecars keep ${publisher.kept()}, since ${why}`;
  return { version, headers: { 'skein-snapshot-version': version, 'skein-published': 'false', warning: warningHeader(warning) }, fields: { published: false, warning } };
}

/** An HTTP `Warning: 299` value (RFC 7234 §5.5) carrying `text`: one line of visible ASCII, so a body carries the message as it is. */
export function warningHeader(text: string): string {
  return `299 - "${text.replace(/[^\x20-\x7e]/g, '?').replace(/["\\]/g, (c) => `\\${c}`)}"`;
}
