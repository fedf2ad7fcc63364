import { afterEach, describe, expect, it, vi } from 'vitest';
import { StreamRegistry } from './stream-registry.js';

const instance = (id: string, version = 'v1') => ({ service: 'catalog', id, address: '10.0.0.1', port: 15443, protocol: 'http' as const, labels: { version } });

afterEach(() => vi.useRealTimers());

describe('StreamRegistry', () => {
  it('removes an instance at once when its stream ends cleanly', () => {
    const registry = new StreamRegistry(30_000);
    const changes = vi.fn();
    registry.onChange(changes);
    const announced = registry.announce(instance('a'));
    expect(registry.instances().map((i) => i.id)).toEqual(['a']);
    announced.end(true);
    expect(registry.instances()).toEqual([]);
    expect(changes).toHaveBeenCalledTimes(2);
  });

  it('keeps a broken stream\'s instance, disconnected, for the grace period', () => {
    vi.useFakeTimers();
    const registry = new StreamRegistry(30_000);
    registry.announce(instance('a')).end(false);
    expect(registry.instances()).toEqual([expect.objectContaining({ id: 'a', health: 'disconnected' })]);
    vi.advanceTimersByTime(29_999);
    expect(registry.instances()).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(registry.instances()).toEqual([]);
  });

  it('a reconnect within the grace period keeps the instance, even when the old stream ends later', () => {
    vi.useFakeTimers();
    const registry = new StreamRegistry(1_000);
    const first = registry.announce(instance('a'));
    const second = registry.announce(instance('a', 'v2'));
    first.end(false);
    vi.advanceTimersByTime(5_000);
    expect(registry.instances()).toEqual([expect.objectContaining({ id: 'a', health: 'healthy', labels: { version: 'v2' } })]);
    second.end(false);
    vi.advanceTimersByTime(500);
    const third = registry.announce(instance('a', 'v2'));
    vi.advanceTimersByTime(5_000);
    expect(registry.instances()).toEqual([expect.objectContaining({ health: 'healthy' })]);
    third.end(true);
    expect(registry.instances()).toEqual([]);
  });

  it('keeps two sidecars announcing the same instance id from different addresses apart: neither replaces the other, nor takes it away on leaving', () => {
    const registry = new StreamRegistry(30_000);
    const first = registry.announce(instance('a'));
    const copy = registry.announce({ ...instance('a'), address: '10.0.0.2' });
    expect(registry.instances().map((i) => `${i.id}@${i.address} ${i.health}`)).toEqual(['a@10.0.0.1 healthy', 'a@10.0.0.2 healthy']);
    copy.ready(false); // draining before it leaves
    copy.end(true);
    expect(registry.instances().map((i) => `${i.id}@${i.address} ${i.health}`)).toEqual(['a@10.0.0.1 healthy']);
    first.end(true);
    expect(registry.instances()).toEqual([]);
  });

  it('lists a sidecar that says it is not ready as critical until it says it is ready', () => {
    const registry = new StreamRegistry(30_000);
    const changes = vi.fn();
    registry.onChange(changes);
    const announced = registry.announce(instance('a'), false);
    expect(registry.instances()).toEqual([expect.objectContaining({ id: 'a', health: 'critical' })]);
    announced.ready(true);
    expect(registry.instances()).toEqual([expect.objectContaining({ health: 'healthy' })]);
    announced.ready(true); // no change, no push
    expect(changes).toHaveBeenCalledTimes(2);
    announced.ready(false); // draining
    expect(registry.instances()).toEqual([expect.objectContaining({ health: 'critical' })]);
    announced.end(true);
    announced.ready(true); // a late report from an ended stream changes nothing
    expect(registry.instances()).toEqual([]);
  });
});
