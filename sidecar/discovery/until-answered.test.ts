import { describe, expect, it } from 'vitest';
import type { Endpoint } from '../../common/config/schema.js';
import { ManualEndpointSource } from '../../test/support/manual-endpoint-source.js';
import { UntilAnsweredSource } from './until-answered.js';

const at = (port: number): Endpoint => ({ address: '127.0.0.1', port, labels: {} });

describe('UntilAnsweredSource', () => {
  it('passes on the stand-in until the primary first answers, then only the primary, even an empty answer', () => {
    const [primary, standIn] = [new ManualEndpointSource(), new ManualEndpointSource()];
    const seen: number[][] = [];
    const stop = new UntilAnsweredSource(primary, standIn).watch('catalog', (e) => seen.push(e.map((x) => x.port)));
    standIn.send('catalog', [at(1)]);
    standIn.send('catalog', [at(1), at(2)]);
    primary.send('catalog', [at(3)]);
    expect(standIn.watching('catalog')).toBe(0);
    standIn.send('catalog', [at(4)]);
    primary.send('catalog', []);
    expect(seen).toEqual([[1], [1, 2], [3], []]);
    stop();
    expect(primary.watching('catalog')).toBe(0);
  });

  it('ends both watches when stopped before the primary answered', () => {
    const [primary, standIn] = [new ManualEndpointSource(), new ManualEndpointSource()];
    const stop = new UntilAnsweredSource(primary, standIn).watch('catalog', () => {});
    expect([primary.watching('catalog'), standIn.watching('catalog')]).toEqual([1, 1]);
    stop();
    expect([primary.watching('catalog'), standIn.watching('catalog')]).toEqual([0, 0]);
  });
});
