import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { loadMeshProto } from '../../common/proto/mesh.js';
import { checkSnapshotSize, snapshotMessage, SnapshotTooLargeError } from './snapshot-size.js';

const LIMIT = 64 * 1024;
const json = (text: string) => JSON.stringify({ version: '1', routes: { a: [{ name: text }] } });
const thrown = (f: () => void): unknown => {
  try {
    f();
  } catch (err) {
    return err;
  }
  return undefined;
};

describe('checkSnapshotSize', () => {
  it('measures what is pushed, the gzipped message: JSON over the limit that compresses under it fits', () => {
    expect(() => checkSnapshotSize('1', json('a'.repeat(4 * LIMIT)), 'write', LIMIT)).not.toThrow();
  });

  it('refuses a message over the limit, naming its exact size and the limit', () => {
    const text = json(randomBytes(LIMIT).toString('base64'));
    const err = thrown(() => checkSnapshotSize('1', text, 'write', LIMIT)) as SnapshotTooLargeError;
    expect(err).toBeInstanceOf(SnapshotTooLargeError);
    const pushed = loadMeshProto().service.Stream!.responseSerialize(snapshotMessage('1', text)).length;
    expect(err.bytes).toBe(pushed);
    expect(err.message).toBe(`this write would make the snapshot ${Number((pushed / 2 ** 20).toFixed(1))} MiB (${pushed} bytes) on the push stream, more than the 0.1 MiB (65536 bytes) a sidecar takes in one message; nothing was written`);
    expect((thrown(() => checkSnapshotSize('1', text, 'compose', LIMIT)) as Error).message).toMatch(/^the snapshot would be .* in one message$/);
  });

});
