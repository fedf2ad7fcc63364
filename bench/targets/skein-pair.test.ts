import { describe, expect, it } from 'vitest';
import { parseSnapshot } from '../../common/config/parse.js';
import { skeinSnapshot } from './skein-pair.js';

const identities = {
  caFile: '/tmp/ca.crt',
  client: { service: 'bench-client', certFile: '/tmp/c.crt', keyFile: '/tmp/c.key' },
  server: { service: 'bench-upstream', certFile: '/tmp/s.crt', keyFile: '/tmp/s.key' },
};

describe('skeinSnapshot', () => {
  it('is a valid snapshot with every feature of the pipeline turned on', () => {
    const snapshot = parseSnapshot(skeinSnapshot(identities, 41_000));
    const service = snapshot.services['bench-upstream']!;
    expect(service.retries.attempts).toBeGreaterThan(0);
    // Two subsets on the one server-side sidecar, at two distinct endpoint keys.
    expect(service.endpoints?.map((e) => `${e.address}:${e.port} ${e.labels.version}`)).toEqual(['127.0.0.1:41000 v1', '127.0.0.2:41000 v2']);
    expect(snapshot.routes['bench-upstream']!.map((r) => r.split)).toEqual([{ v2: 100 }, { v1: 90, v2: 10 }]);
    expect(snapshot.intentions).toEqual({ defaultAction: 'deny', rules: [{ source: 'bench-client', destination: 'bench-upstream', action: 'allow' }] });
  });
});
