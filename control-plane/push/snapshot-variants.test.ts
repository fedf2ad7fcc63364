import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { lackedFeatures } from '../../common/config/snapshot-features.js';
import { loadMeshProto, type ControlMessage } from '../../common/proto/mesh.js';
import type { SnapshotBody } from '../state/compose.js';
import type { PublishedSnapshot } from '../state/snapshots.js';
import { lackedKey, SnapshotVariants } from './snapshot-variants.js';

function published(version: string, body: SnapshotBody): PublishedSnapshot {
  return { version, json: JSON.stringify({ version, ...body }), body, changedAt: 0 };
}

const endpoints = [{ address: '10.0.0.1', port: 8080, labels: { version: 'v1' } }];
const withFeatures = published('7', {
  services: { catalog: { lb: 'ring-hash', hashOn: { header: 'x-user' }, endpoints }, orders: { rateLimit: { requestsPerSecond: 5 }, endpoints } },
  routes: {},
});
const plain = published('8', { services: { catalog: { endpoints } }, routes: {} });

const json = (message: ControlMessage) => JSON.parse(gunzipSync(message.snapshot!.jsonGzip!).toString()) as { version: string; services: Record<string, object> };
const old = lackedFeatures([]);
const oldKey = lackedKey(old);

describe('SnapshotVariants', () => {
  it('gives sidecars that lack nothing the snapshot as published, one message for all', () => {
    const variants = new SnapshotVariants();
    const first = variants.variant(withFeatures, [], '');
    expect(first).toBe(variants.variant(withFeatures, [], ''));
    expect(first.leftOut).toEqual([]);
    expect(first.message.snapshot!.version).toBe('7');
    expect(json(first.message)).toEqual(JSON.parse(withFeatures.json));
  });

  it('gives sidecars that lack features the snapshot without them, under its own version, built once for every such stream', () => {
    const variants = new SnapshotVariants();
    const variant = variants.variant(withFeatures, old, oldKey);
    expect(variants.variant(withFeatures, [...old].reverse(), lackedKey([...old].reverse()))).toBe(variant);
    expect(variant.message.snapshot!.version).toBe('7');
    expect(json(variant.message)).toEqual({ version: '7', services: { catalog: { endpoints }, orders: { endpoints } }, routes: {} });
    expect(variant.leftOut.map((l) => l.means)).toEqual([
      'catalog: balanced by least-request, not ring-hash on header x-user, so requests lose their affinity',
      'orders: not rate limited by this instance',
    ]);
    // Another set is another variant: this one keeps ring-hash.
    const noLimits = variants.variant(withFeatures, ['rate-limit'], 'rate-limit');
    expect(json(noLimits.message).services.catalog).toEqual({ lb: 'ring-hash', hashOn: { header: 'x-user' }, endpoints });
  });

  it('sends a snapshot that uses nothing a sidecar lacks as it is: the same message as to the others', () => {
    const variants = new SnapshotVariants();
    const whole = variants.variant(plain, [], '');
    expect(variants.variant(plain, old, oldKey)).toBe(whole);
  });

  it('builds each snapshot its own variants', () => {
    const variants = new SnapshotVariants();
    const next = published('9', withFeatures.body);
    expect(variants.variant(next, old, oldKey)).not.toBe(variants.variant(withFeatures, old, oldKey));
    expect(variants.variant(next, old, oldKey).message.snapshot!.version).toBe('9');
  });

  it('sends a variant no larger on the stream than the snapshot as published, whose size was checked against the limit', () => {
    const variants = new SnapshotVariants();
    const size = (message: ControlMessage) => loadMeshProto().service.Stream!.responseSerialize(message).length;
    expect(size(variants.variant(withFeatures, old, oldKey).message)).toBeLessThanOrEqual(size(variants.variant(withFeatures, [], '').message));
  });
});
