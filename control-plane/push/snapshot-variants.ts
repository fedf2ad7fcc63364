/**
 * The message each sidecar is pushed for a snapshot: the snapshot as published for sidecars
 * that understand every feature it uses, or it without what they lack (common/config/
 * snapshot-features.ts). Each variant is built, gzipped and protobuf-encoded once per
 * snapshot and set of lacked features, and shared by every stream with that set, as the
 * whole snapshot is; a snapshot that uses nothing a set lacks is sent as it is.
 */
import { snapshotWithout, type LeftOut, type SnapshotFeature } from '../../common/config/snapshot-features.js';
import type { ControlMessage } from '../../common/proto/mesh.js';
import { snapshotMessage } from '../state/snapshot-size.js';
import type { PublishedSnapshot } from '../state/snapshots.js';

export interface PushedVariant {
  readonly message: ControlMessage;
  /** What sidecars sent it run without; empty for the snapshot as published. */
  readonly leftOut: readonly LeftOut[];
}

/** The features a sidecar lacks, as a key of the cache: '' for one that lacks none. */
export function lackedKey(lacked: readonly SnapshotFeature[]): string {
  return [...lacked].sort().join(',');
}

export class SnapshotVariants {
  /** Per snapshot (dropped with it), per lackedKey. */
  private readonly variants = new WeakMap<PublishedSnapshot, Map<string, PushedVariant>>();

  /** `lacked` and `key` (its lackedKey, computed once per stream) name the same set. */
  variant(snapshot: PublishedSnapshot, lacked: readonly SnapshotFeature[], key: string): PushedVariant {
    let byKey = this.variants.get(snapshot);
    if (!byKey) {
      byKey = new Map();
      this.variants.set(snapshot, byKey);
    }
    let variant = byKey.get(key);
    if (!variant) {
      variant = key === '' ? this.whole(snapshot, byKey) : this.without(snapshot, lacked, byKey);
      byKey.set(key, variant);
    }
    return variant;
  }

  private whole(snapshot: PublishedSnapshot, byKey: Map<string, PushedVariant>): PushedVariant {
    let whole = byKey.get('');
    if (!whole) {
      whole = { message: snapshotMessage(snapshot.version, snapshot.json), leftOut: [] };
      byKey.set('', whole);
    }
    return whole;
  }

  private without(snapshot: PublishedSnapshot, lacked: readonly SnapshotFeature[], byKey: Map<string, PushedVariant>): PushedVariant {
    const full = { version: snapshot.version, ...snapshot.body };
    const { snapshot: sent, leftOut } = snapshotWithout(full, lacked);
    if (sent === full) return this.whole(snapshot, byKey);
    // Smaller than the published JSON, whose size was checked against the stream's limit.
    return { message: snapshotMessage(snapshot.version, JSON.stringify(sent)), leftOut };
  }
}
