/**
 * How large a snapshot is on the push stream, held against MAX_STREAM_MESSAGE_BYTES, the most
 * either end of the stream takes: a larger message fails every sidecar's stream, which then
 * reconnects and fails again, so such a snapshot must be refused where it would be made (an
 * admin write) and never published.
 */
import { gzipSync } from 'node:zlib';
import { loadMeshProto, MAX_STREAM_MESSAGE_BYTES, type ControlMessage } from '../../common/proto/mesh.js';

/** The message a snapshot is pushed as: its JSON gzipped (`json_gzip`), 64 KiB for 1000 endpoints becoming ~6 KiB. */
export function snapshotMessage(version: string, json: string): ControlMessage {
  return { snapshot: { version, json: '', jsonGzip: gzipSync(json) } };
}

/**
 * Throws SnapshotTooLargeError when the message `version` and its wire `json` are pushed as
 * exceeds `limit`. Gzip grows no input by more than a 1024th plus a few bytes (zlib's
 * deflateBound), so JSON that fits with that to spare is not compressed to tell.
 */
export function checkSnapshotSize(version: string, json: string, cause: SnapshotCause, limit = MAX_STREAM_MESSAGE_BYTES): void {
  const raw = Buffer.byteLength(json);
  if (raw + raw / 1024 + 1024 <= limit) return;
  const bytes = loadMeshProto().service.Stream!.responseSerialize(snapshotMessage(version, json)).length;
  if (bytes > limit) throw new SnapshotTooLargeError(bytes, limit, cause);
}

/** What makes a snapshot: an admin write (refused, nothing written), or a compose (not published). */
export type SnapshotCause = 'write' | 'compose';

/** A snapshot that would not fit in one message on the push stream. */
export class SnapshotTooLargeError extends Error {
  override name = 'SnapshotTooLargeError';
  constructor(
    readonly bytes: number,
    readonly limit: number,
    cause: SnapshotCause,
  ) {
    const size = `${mib(bytes)} on the push stream, more than the ${mib(limit)} a sidecar takes in one message`;
    super(cause === 'write' ? `this write would make the snapshot ${size}; nothing was written` : `the snapshot would be ${size}`);
  }
}

function mib(bytes: number): string {
  return `${Number((bytes / 2 ** 20).toFixed(1))} MiB (${bytes} bytes)`;
}
