/**
 * The canary controller's `setSplit`: the rollout's own split, written past the guard against
 * writes that touch a rollout (it is that rollout), resolved once sidecars are sent the snapshot
 * with it. A split stored but not published (another stored entry keeps the config from being
 * composed, or snapshots are held until Consul's catalog is read) rejects with SplitNotPublishedError, since the publisher settles either way and a
 * rollout would otherwise measure and advance on a split sidecars never got.
 */
import type { MeshConfig } from '../state/mesh-config.js';
import type { SnapshotPublisher } from '../state/snapshots.js';
import { SplitNotPublishedError, type CanaryDeps } from './controller.js';

export function publishedSplit(config: MeshConfig, publisher: SnapshotPublisher): CanaryDeps['setSplit'] {
  return async (service, weights) => {
    await config.setSplit(service, weights, undefined, { rollout: true });
    await publisher.settled();
    const why = publisher.unpublished();
    if (why === undefined) return;
    const split = Object.entries(weights).map(([subset, weight]) => `${subset}=${weight}`).join(' ');
    throw new SplitNotPublishedError(`the split ${split} of ${service} is stored but not published, so sidecars keep routing by ${publisher.kept()}, since ${why}`);
  };
}
