import { describe, expect, it } from 'vitest';
import { parseSnapshot } from '../config/parse.js';
import { failoverSteps, failoverSubsetsByService } from './failover.js';

const { services } = parseSnapshot({
  services: {
    catalog: {
      failover: {
        v2: [{ subset: 'v1' }, { service: 'orders' }, { service: 'grpc-dr' }, { service: 'catalog', subset: 'v2' }, { service: 'catalog-dr', subset: 'v1' }, { service: 'catalog', subset: 'v1' }],
        '*': [{ service: 'catalog', subset: 'v1' }],
      },
    },
    'catalog-dr': {},
    'grpc-dr': { protocol: 'grpc' },
  },
});
const labels = (service: string, subset: string) => failoverSteps(services, service, subset).map((s) => `${s.service}/${s.subset}`);

describe('failoverSteps', () => {
  it('fills in this service and the catch-all, and leaves out a service not listed, one of another protocol, the subset itself and a target again', () => {
    expect(labels('catalog', 'v2')).toEqual(['catalog/v1', 'catalog-dr/v1']);
  });

  it("gives a subset without a list of its own `*`'s, without the subset itself", () => {
    expect(labels('catalog', 'canary')).toEqual(['catalog/v1']);
    expect(labels('catalog', 'v1')).toEqual([]);
    expect(labels('catalog-dr', 'v1')).toEqual([]);
    expect(labels('orders', '*')).toEqual([]);
  });
});

describe('failoverSubsetsByService', () => {
  it('names, per service, every subset a list sends to, its own included', () => {
    expect(failoverSubsetsByService(services)).toEqual(
      new Map([
        ['catalog', new Set(['v1', 'v2'])],
        ['orders', new Set(['*'])],
        ['grpc-dr', new Set(['*'])],
        ['catalog-dr', new Set(['v1'])],
      ]),
    );
  });
});
