/**
 * `skein split` against a real HTTP server on 127.0.0.1 playing a control plane whose stored
 * config cannot be composed: the split is stored but not published, which the answer says in
 * the headers the control plane's own `afterWrite` makes, and the command must say too.
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { afterWrite } from '../../control-plane/admin-api/conditions.js';
import type { SnapshotPublisher } from '../../control-plane/state/snapshots.js';
import { AdminClient } from '../admin-client.js';
import { setSplit } from './split.js';

const why = 'invalid config in the store (consul), not published: routes/broken: (root): Expected array, received string; fix "it"';
let publishing: string | undefined;
/** When the control plane's resync hold after its start ends, while it lasts. */
let holdEnds: number | undefined;
let server: Server;
let url: string;

beforeAll(async () => {
  const publisher = { settled: async () => undefined, current: () => ({ version: '7' }), kept: () => 'snapshot 7', unpublished: () => publishing && `the stored config cannot be composed: ${publishing}` } as unknown as SnapshotPublisher;
  server = createServer((req, res) => {
    req.resume();
    void afterWrite(publisher, { holdEnds: () => holdEnds }).then(({ headers }) => {
      res.writeHead(200, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify([{ match: { pathPrefix: '/' }, split: { v1: 50, v2: 50 } }]));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterAll(() => new Promise((resolve) => server.close(resolve)));

describe('skein split', () => {
  it('says when the split is stored but not published, with the control plane\'s reason', async () => {
    publishing = why;
    const notices: string[] = [];
    const set = await setSplit(new AdminClient(url), 'backend', { v1: 50, v2: 50 }, false, (line) => notices.push(line));
    const warning = `stored but not published: sidecars keep snapshot 7, since the stored config cannot be composed: ${why}`;
    expect(notices).toEqual([`warning: the split of backend is ${warning}`]);
    expect(set).toMatchObject({ snapshotVersion: '7', published: false, warning });
  });

  it('says when the split is published during the resync hold after a start, and until when sidecars running a snapshot keep theirs', async () => {
    publishing = undefined;
    const ends = Date.now() + 30_000;
    holdEnds = ends;
    const notices: string[] = [];
    const set = await setSplit(new AdminClient(url), 'backend', { v1: 50, v2: 50 }, false, (line) => notices.push(line));
    holdEnds = undefined;
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(/^warning: the split of backend is published, but sidecars that reconnected running a snapshot keep it until the resync hold after the control plane's start ends at /);
    expect(notices[0]).toContain(`ends at ${new Date(ends).toISOString()}`);
    expect(set).toMatchObject({ snapshotVersion: '7', published: true, warning: notices[0]!.replace('warning: the split of backend is ', '') });
  });

  it('says nothing more when it is published', async () => {
    publishing = undefined;
    const notices: string[] = [];
    const set = await setSplit(new AdminClient(url), 'backend', { v1: 50, v2: 50 }, false, (line) => notices.push(line));
    expect(notices).toEqual([]);
    expect(set).toEqual({ routes: [{ match: { pathPrefix: '/' }, split: { v1: 50, v2: 50 } }], snapshotVersion: '7', published: true });
  });
});
