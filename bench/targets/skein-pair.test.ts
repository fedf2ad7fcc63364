import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSnapshot } from '../../common/config/parse.js';
import { freePorts } from '../../test/support/ports.js';
import { skeinBin } from '../../test/support/processes.js';
import { ChildProcesses } from '../lib/children.js';
import { makeBenchIdentities } from '../lib/identities.js';
import { BODY, startUpstream } from '../lib/upstream-server.js';
import { skeinSnapshot, startSkeinPair } from './skein-pair.js';
import { waitForTarget, type Target } from './target.js';

const fakeIdentities = {
  caFile: '/tmp/ca.crt',
  client: { service: 'bench-client', certFile: '/tmp/c.crt', keyFile: '/tmp/c.key' },
  server: { service: 'bench-upstream', certFile: '/tmp/s.crt', keyFile: '/tmp/s.key' },
};

describe('skeinSnapshot', () => {
  it('is a valid snapshot with every feature of the pipeline turned on', () => {
    const snapshot = parseSnapshot(skeinSnapshot(fakeIdentities, 41_000));
    const service = snapshot.services['bench-upstream']!;
    expect(service.retries.attempts).toBeGreaterThan(0);
    // Two subsets on the one server-side sidecar, at two distinct endpoint keys.
    expect(service.endpoints?.map((e) => `${e.address}:${e.port} ${e.labels.version}`)).toEqual(['127.0.0.1:41000 v1', '127.0.0.2:41000 v2']);
    expect(snapshot.routes['bench-upstream']!.map((r) => r.split)).toEqual([{ v2: 100 }, { v1: 90, v2: 10 }]);
    expect(snapshot.intentions).toEqual({ defaultAction: 'deny', rules: [{ source: 'bench-client', destination: 'bench-upstream', action: 'allow' }] });
  });
});

describe('skeinSnapshot minimal', () => {
  it('is a valid snapshot with one endpoint and no optional stages', () => {
    const snapshot = parseSnapshot(skeinSnapshot(fakeIdentities, 41_000, 'minimal'));
    expect(snapshot.services['bench-upstream']!.endpoints).toHaveLength(1);
    expect(snapshot.services['bench-upstream']!.retries.attempts).toBe(0);
    expect(snapshot.routes).toEqual({});
    expect(snapshot.intentions).toBeUndefined();
  });
});

// Real sidecars from dist/ (build first): the bench's (C) must keep working as the sidecar changes.
describe('Skein pair', () => {
  const children = new ChildProcesses();
  const dir = mkdtempSync(join(tmpdir(), 'skein-bench-test-'));
  let target: Target;

  beforeAll(async () => {
    const identities = makeBenchIdentities(dir, 'bench-client', 'bench-upstream');
    const upstream = await startUpstream(children);
    target = startSkeinPair(children, { skeinBin, dir, upstreamPort: upstream.port, ports: await freePorts(6), identities });
    await waitForTarget(target);
  });

  afterAll(async () => {
    await children.stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  async function get(headers: Record<string, string>): Promise<{ status: number; body: Buffer }> {
    const res = await request(target.url, { headers: { host: 'bench-upstream', ...headers } });
    return { status: res.statusCode, body: Buffer.from(await res.body.arrayBuffer()) };
  }

  it('carries requests to the upstream through both subsets of the split', async () => {
    // The canary header pins subset v2 (127.0.0.2); without it 90% go to v1 (127.0.0.1).
    const variants: Record<string, string>[] = [{}, { 'x-canary': 'true' }];
    for (const headers of variants) {
      const res = await get(headers);
      expect(res.status).toBe(200);
      expect(res.body).toEqual(BODY);
    }
  });

  it('measures each sidecar as one process', () => {
    expect(target.proxies.map((p) => p.pids())).toEqual(target.children.map((c) => [c.pid]));
  });
});
