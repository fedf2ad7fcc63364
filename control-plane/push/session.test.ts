import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { Logger } from '../../common/log.js';
import type { SidecarMessage } from '../../common/proto/mesh.js';
import type { SnapshotBody } from '../state/compose.js';
import type { PublishedSnapshot, SnapshotPublisher } from '../state/snapshots.js';
import { ProxyTracker } from './proxies.js';
import { StreamSession, type StreamCall } from './session.js';
import { SnapshotVariants } from './snapshot-variants.js';

function published(version: string, hashedHeader: string): PublishedSnapshot {
  const body: SnapshotBody = { services: { catalog: { lb: 'ring-hash', hashOn: { header: hashedHeader } } }, routes: {} };
  return { version, json: JSON.stringify({ version, ...body }), body, changedAt: 0 };
}

/** The push stream's server end, as much of it as a session uses. */
class FakeCall extends EventEmitter {
  readonly cancelled = false;
  write(): boolean {
    return true;
  }
  sendMetadata(): void {}
  getPeer(): string {
    return 'test';
  }
  end(): void {}
}

/** A session whose Hello names no features (a sidecar older than them), fed snapshots by `publish`. */
async function olderSidecarSession(first: PublishedSnapshot) {
  let current = first;
  let listener: ((snapshot: PublishedSnapshot) => void) | undefined;
  const publisher = { current: () => current, onPublish: (l: (s: PublishedSnapshot) => void) => ((listener = l), () => {}) } as unknown as SnapshotPublisher;
  const warnings: unknown[] = [];
  const logger = { info() {}, warn: (fields: unknown) => warnings.push(fields) } as unknown as Logger;
  const proxies = new ProxyTracker();
  const call = new FakeCall();
  new StreamSession(call as unknown as StreamCall, { publisher, proxies, authenticate: async () => 'web', logger, holdUntil: () => 0, helloTimeoutMs: 10_000, variants: new SnapshotVariants() }, () => {});
  const hello: SidecarMessage = { msg: 'hello', hello: { service: 'web', instanceId: 'web-old', version: 'v1', address: '127.0.0.1', inboundPort: 8080, adminPort: 0, protocol: 'http', token: 't', lastVersion: '', certExpiryUnix: '0', labels: {} } };
  call.emit('data', hello);
  await new Promise((resolve) => setImmediate(resolve));
  return {
    warnings,
    runsWithout: () => proxies.view(current.version)[0]!.runsWithout,
    publish(snapshot: PublishedSnapshot) {
      current = snapshot;
      listener!(snapshot);
    },
  };
}

describe('StreamSession with a sidecar older than the features in use', () => {
  it('warns when what it runs without changes, not on every push, remembering only the latest', async () => {
    const session = await olderSidecarSession(published('1', 'x-user'));
    expect(session.warnings).toHaveLength(1);
    session.publish(published('2', 'x-user'));
    expect(session.warnings).toHaveLength(1);
    session.publish(published('3', 'x-session'));
    expect(session.runsWithout()).toEqual(['catalog: balanced by least-request, not ring-hash on header x-session, so requests lose their affinity']);
    expect(session.warnings).toHaveLength(2);
    // Back to the first: said again, as the session keeps one set (every set it was warned of grew with each config change for the stream's life).
    session.publish(published('4', 'x-user'));
    expect(session.warnings).toHaveLength(3);
  });
});
