import { describe, expect, it } from 'vitest';
import { ConfigError, parseAuthoredSnapshot, parseSnapshot } from './parse.js';

function problems(input: unknown, parse: (input: unknown) => unknown = parseSnapshot): string[] {
  try {
    parse(input);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

const endpoint = (port: number, version: string) => ({ address: '127.0.0.1', port, labels: { version } });

/** catalog (v1, v2) and catalog-dr (v1), with `failover` as catalog's. */
function file(failover: unknown, dr: Record<string, unknown> = {}) {
  return {
    services: {
      catalog: { failover, endpoints: [endpoint(8001, 'v1'), endpoint(8002, 'v2')] },
      'catalog-dr': { endpoints: [endpoint(9001, 'v1')], ...dr },
    },
  };
}

const authored = (input: unknown) => parseAuthoredSnapshot(input);
const withEndpoints = (input: unknown) => parseAuthoredSnapshot(input, 'config', { endpointsInFile: true });

describe('services.<name>.failover', () => {
  it('takes subset and service targets, in order, as written', () => {
    const lists = { v2: [{ subset: 'v1' }], '*': [{ service: 'catalog-dr' }, { service: 'catalog-dr', subset: 'v1' }] };
    expect(withEndpoints(file(lists)).services.catalog!.failover).toEqual(lists);
  });

  it('refuses an empty list, a target with neither field, unknown fields, more than 8 targets and a bad key, naming each path', () => {
    const nine = Array.from({ length: 9 }, (_, i) => ({ service: 'catalog-dr', subset: `s${i}` }));
    expect(problems(file({ v2: [], v1: [{}], 'v 3': [{ subset: 'v1' }], canary: nine, '**': [{ subset: 'v1', weight: 1 }] }))).toEqual([
      'services.catalog.failover.v2: list at least one target (leave the subset out for none)',
      'services.catalog.failover.v1[0]: give subset, service or both (subset alone is a subset of this service)',
      'services.catalog.failover.v 3: must be a subset name (letters, digits, "-", "_" or "."), or "*" for every subset without a list of its own',
      'services.catalog.failover.canary: lists at most 8 targets',
      'services.catalog.failover.**: must be a subset name (letters, digits, "-", "_" or "."), or "*" for every subset without a list of its own',
      'services.catalog.failover.**[0]: unknown field "weight"',
    ]);
  });

  it('refuses a subset failing over to itself and a target listed twice', () => {
    expect(problems(file({ v2: [{ subset: 'v1' }, { subset: 'v2' }, { subset: 'v1' }] }))).toEqual([
      'services.catalog.failover.v2[1].subset: is the subset this list is for: a subset cannot fail over to itself',
      'services.catalog.failover.v2[2]: is the same target as [0]',
    ]);
  });

  it('in a written snapshot, refuses a target service it does not list, or of another protocol, and this service named as itself or twice', () => {
    expect(problems(file({ v2: [{ service: 'orders' }, { service: 'catalog', subset: 'v2' }, { subset: 'v1' }, { service: 'catalog', subset: 'v1' }], '*': [{ service: 'catalog-dr' }] }, { protocol: 'grpc' }), authored)).toEqual([
      'services.catalog.failover.v2[0].service: names orders, which is not in services: list it there (with its endpoints) or leave the target out',
      'services.catalog.failover.v2[1]: is catalog/v2, the subset this list is for: a subset cannot fail over to itself',
      'services.catalog.failover.v2[3]: is the same target as [2]',
      'services.catalog.failover.*[0].service: catalog-dr speaks grpc, catalog http: a request fails over only to a service of its own protocol',
    ]);
    // A pushed snapshot may lose a target service with its last instance: its sidecars skip the target.
    expect(parseSnapshot(file({ v2: [{ service: 'orders' }] })).services.catalog!.failover).toEqual({ v2: [{ service: 'orders' }] });
  });

  it('with the endpoints in the file, refuses a list or target subset nothing selects, of this service or the target', () => {
    expect(problems(file({ v3: [{ subset: 'v1' }], v2: [{ subset: 'V1' }, { service: 'catalog-dr', subset: 'v2' }] }), withEndpoints)).toEqual([
      'services.catalog.failover.v3: unknown subset "v3" of catalog: not declared in its policy and no instance has version=v3',
      'services.catalog.failover.v2[0].subset: unknown subset "V1" of catalog: not declared in its policy and no instance has version=V1',
      'services.catalog.failover.v2[1].subset: unknown subset "v2" of catalog-dr: not declared in its policy and no instance has version=v2',
    ]);
  });
});
