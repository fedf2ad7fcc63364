/**
 * A reload that removes an endpoint while a request is in flight: the request's retry goes to
 * the endpoints in force after the reload (README "Reload"), never to the removed one, whose
 * pool is closed by then.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { SnapshotInput } from '../../common/config/schema.js';
import { echoHandler, Processes, startUpstream, waitUntil, writeConfigFile, writeTempConfig, type Handler, type TestUpstream } from '../support/index.js';
import { endpointOf, send } from './resilience-fixture.js';

const procs = new Processes();
const upstreams: TestUpstream[] = [];

afterEach(async () => {
  await procs.killAll();
  await Promise.all(upstreams.splice(0).map((u) => u.close()));
});

/** Holds its first request until `release()`, then fails it with a 503 (a retry); answers the others at once. */
function failsFirstWhenReleased(name: string): { handler: Handler; release: () => void } {
  let held: (() => void) | undefined;
  let first = true;
  const echo = echoHandler(name);
  const handler: Handler = (req, res) => {
    if (req.url === '/health' || !first) return echo(req, res);
    first = false;
    held = () => res.writeHead(503, { 'content-type': 'text/plain' }).end('busy\n');
  };
  return { handler, release: () => held?.() };
}

function snapshot(version: string, ...endpoints: TestUpstream[]): SnapshotInput {
  return {
    version,
    services: { catalog: { lb: 'round-robin', timeout: '10s', retries: { attempts: 1, on: ['gateway-error'] }, endpoints: endpoints.map((e) => endpointOf(e)) } },
  };
}

describe('a reload removing an endpoint', () => {
  it('sends the retry of a request begun before it to an endpoint still in force', async () => {
    const [held, otherHeld] = [failsFirstWhenReleased('a'), failsFirstWhenReleased('b')];
    const a = await startUpstream(held.handler);
    const b = await startUpstream(otherHeld.handler);
    const app = await startUpstream(echoHandler('web'));
    upstreams.push(a, b, app);
    const file = writeTempConfig(snapshot('1', a, b));
    const sc = await procs.sidecar({ service: 'web', appPort: app.port, config: file });

    const reply = send(`${sc.outboundUrl}/items`, { headers: { host: 'catalog' } });
    await waitUntil(() => a.requests.length + b.requests.length > 0, { what: 'the first try to arrive' });
    // The endpoint the first try is held on stays; the other one is removed, and only then does the try fail.
    const [kept, removed] = a.requests.length > 0 ? [a, b] : [b, a];
    writeConfigFile(file, snapshot('2', kept));
    await waitUntil(async () => ((await (await fetch(`${sc.adminUrl}/config`)).json()) as { version: string }).version === '2', { what: 'version 2 applied' });
    (kept === a ? held : otherHeld).release();

    const r = await reply;
    expect(r.status, r.body).toBe(200);
    expect(JSON.parse(r.body).name).toBe(kept === a ? 'a' : 'b');
    expect(removed.requests).toHaveLength(0);
    expect(kept.requests.map((q) => q.headers['x-skein-attempt'])).toEqual(['1', '2']);
  }, 20_000);
});
