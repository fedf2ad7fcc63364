/**
 * Retries on statuses named by number (`retries.on: [503, 429]`), end to end: a real `web`
 * sidecar in front of a real app that answers each path's chosen status until the try it is
 * told, with the Retry-After it is told.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { RouteRuleInput, ServicePolicyInput } from '../../common/config/schema.js';
import { echoHandler, makeCa, makeLeaf, Processes, startUpstream, tempDir, writeIdentity, writeTempConfig, type Handler, type TestUpstream } from '../support/index.js';
import { endpointOf, metric, scrape, send, startOutbound } from './resilience-fixture.js';

const procs = new Processes();
const upstreams: TestUpstream[] = [];

afterEach(async () => {
  await procs.killAll();
  await Promise.all(upstreams.splice(0).map((u) => u.close()));
});

/** When each try of a path came in (performance.now() of this process, which runs the app). */
type Arrivals = Map<string, number[]>;

/**
 * `/<status>[/...]?fail=N&retryAfter=V`: the status (with `Retry-After: V` when given) for the
 * first N tries of the path (1 by default), then 200 `ok after N`.
 */
async function statusApp(arrivals: Arrivals): Promise<TestUpstream> {
  const handler: Handler = (req, res) => {
    const url = new URL(req.url ?? '/', 'http://app');
    const tries = arrivals.get(url.pathname) ?? [];
    tries.push(performance.now());
    arrivals.set(url.pathname, tries);
    req.resume();
    const status = Number(url.pathname.split('/')[1]);
    if (tries.length > Number(url.searchParams.get('fail') ?? 1)) {
      res.end(`ok after ${tries.length - 1}`);
      return;
    }
    const retryAfter = url.searchParams.get('retryAfter');
    res.writeHead(status, { 'content-type': 'text/plain', ...(retryAfter === null ? {} : { 'retry-after': retryAfter }) });
    res.end(`app says ${status}, try ${tries.length}`);
  };
  const u = await startUpstream(handler);
  upstreams.push(u);
  return u;
}

function catalog(app: TestUpstream, policy: ServicePolicyInput, rules?: RouteRuleInput[]) {
  return { version: '1', services: { catalog: { ...policy, endpoints: [endpointOf(app)] } }, ...(rules ? { routes: { catalog: rules } } : {}) };
}

const quick = { base: '1ms', max: '2ms' };

describe('retries on chosen statuses', () => {
  it('retry a 503 named in on to success and pass a 500 back at once, counting the tries in x-skein-attempt', async () => {
    const arrivals: Arrivals = new Map();
    const app = await statusApp(arrivals);
    const web = await startOutbound(procs, catalog(app, { retries: { attempts: 2, on: ['connect-failure', 503], backoff: quick } }));

    const retried = await web.call('/503/a');
    expect([retried.status, retried.body]).toEqual([200, 'ok after 1']);
    const passed = await web.call('/500/a');
    expect([passed.status, passed.body]).toEqual([500, 'app says 500, try 1']);
    expect(passed.headers['x-skein-reason']).toBeUndefined();
    expect(arrivals.get('/500/a')).toHaveLength(1);

    // Tries run out: the last try's answer is passed back as the app gave it.
    const exhausted = await web.call('/503/b?fail=5');
    expect([exhausted.status, exhausted.body]).toEqual([503, 'app says 503, try 3']);
    expect(app.requests.filter((r) => r.url.startsWith('/503/')).map((r) => r.headers['x-skein-attempt'])).toEqual(['1', '2', '1', '2', '3']);

    // A 503 met is a gateway error, whichever condition retried it.
    expect(metric(await scrape(web.sidecar), 'skein_retries_total', { destination: 'catalog', reason: 'gateway-error' })).toBe(3);
  });

  it("retry a 429 after its Retry-After, pass one whose wait would outlast the timeout or 10 s back at once, and never replay a POST's", async () => {
    const arrivals: Arrivals = new Map();
    const app = await statusApp(arrivals);
    const web = await startOutbound(procs, catalog(app, { timeout: '3s', retries: { attempts: 2, on: [429], backoff: quick } }, [
      { match: { pathPrefix: '/429/long' }, timeout: '30s' },
      { match: { pathPrefix: '/' } },
    ]));

    const waited = await web.call('/429/a?retryAfter=1');
    expect([waited.status, waited.body]).toEqual([200, 'ok after 1']);
    const [first, second] = arrivals.get('/429/a')!;
    // Timers never fire early; the backoff alone (at most 2 ms) would have sent it at once.
    expect(second! - first!).toBeGreaterThanOrEqual(990);

    // 5 s would end past the route's 3 s timeout: the 429 goes back without waiting for any of it.
    const past = await web.call('/429/b?retryAfter=5');
    expect([past.status, past.headers['retry-after']]).toEqual([429, '5']);
    expect(past.ms).toBeLessThan(1000);
    // Within a 30 s timeout, but past the 10 s the sidecar waits at most.
    const long = await web.call('/429/long?retryAfter=11');
    expect([long.status, long.headers['retry-after']]).toEqual([429, '11']);
    expect(long.ms).toBeLessThan(1000);
    expect([arrivals.get('/429/b'), arrivals.get('/429/long')].map((tries) => tries!.length)).toEqual([1, 1]);

    // A 429 without Retry-After waits the ordinary backoff.
    const plain = await web.call('/429/c');
    expect(plain.status).toBe(200);
    expect(plain.ms).toBeLessThan(1000);

    // The app had the POST: it is not sent again (no retryNonIdempotent).
    const post = await web.call('/429/post', { method: 'POST', body: '{"n":1}', headers: { 'content-type': 'application/json' } });
    expect([post.status, post.body]).toEqual([429, 'app says 429, try 1']);
    expect(arrivals.get('/429/post')).toHaveLength(1);

    expect(metric(await scrape(web.sidecar), 'skein_retries_total', { destination: 'catalog', reason: '4xx' })).toBe(2);
  });

  it("retry by a rule's own on: the rule's 409 is retried, the service's default conditions leave it alone elsewhere", async () => {
    const arrivals: Arrivals = new Map();
    const app = await statusApp(arrivals);
    const web = await startOutbound(procs, catalog(app, { retries: { attempts: 2, backoff: quick } }, [
      { name: 'conflicts', match: { pathPrefix: '/409/rule' }, retries: { attempts: 1, on: [409, 'gateway-error'], backoff: quick } },
      { match: { pathPrefix: '/' } },
    ]));

    const ruled = await web.call('/409/rule');
    expect([ruled.status, ruled.body]).toEqual([200, 'ok after 1']);
    const other = await web.call('/409/other');
    expect([other.status, other.body]).toEqual([409, 'app says 409, try 1']);
    // The rule's one attempt: its second 409 is passed back.
    const twice = await web.call('/409/rule-b?fail=2');
    expect([twice.status, twice.body]).toEqual([409, 'app says 409, try 2']);
    // The service's default conditions name no 4xx, so a 429 there is relayed as it came.
    const limited = await web.call('/429/default?retryAfter=1');
    expect(limited.status).toBe(429);
    expect([arrivals.get('/409/rule'), arrivals.get('/409/other'), arrivals.get('/409/rule-b'), arrivals.get('/429/default')].map((tries) => tries!.length)).toEqual([2, 1, 2, 1]);
  });

  it("retry a POST that a peer sidecar's rate limit refused after its Retry-After: that 429 says the app never had it", async () => {
    const [catalogApp, webApp] = await Promise.all([startUpstream(echoHandler('catalog')), startUpstream(echoHandler('web'))]);
    upstreams.push(catalogApp, webApp);
    // Over mTLS the peer is known to be a sidecar, and its own answers are marked as such (plain HTTP has no such mark).
    const [ca, dir] = [makeCa(), tempDir()];
    const identity = (service: string) => writeIdentity(dir, service, makeLeaf(ca, service));
    const catalog = await procs.sidecar({ service: 'catalog', appPort: catalogApp.port, identity: identity('catalog'), config: writeTempConfig({ version: '1', services: { catalog: { rateLimit: { requestsPerSecond: 1, burst: 1 } } } }) });
    const web = await procs.sidecar({
      service: 'web',
      appPort: webApp.port,
      identity: identity('web'),
      config: writeTempConfig({
        version: '1',
        services: { catalog: { timeout: '5s', retries: { attempts: 1, on: ['connect-failure', 429], backoff: quick }, endpoints: [{ address: '127.0.0.1', port: catalog.inboundPort, labels: { version: 'v1' } }] } },
      }),
    });
    const post = () => send(`${web.outboundUrl}/orders`, { method: 'POST', body: '{"n":1}', headers: { host: 'catalog', 'content-type': 'application/json' } });
    expect((await post()).status).toBe(200);
    // The bucket is empty now: the peer answers 429 rate-limited with Retry-After: 1, and the retry waits that long.
    const retried = await post();
    expect(retried.status, retried.body).toBe(200);
    expect(retried.ms).toBeGreaterThanOrEqual(900);
    const posts = catalogApp.requests.filter((r) => r.method === 'POST');
    expect(posts.map((r) => r.headers['x-skein-attempt'])).toEqual(['1', '2']);
    expect(metric(await scrape(web), 'skein_retries_total', { destination: 'catalog', reason: '4xx' })).toBe(1);
  });
});
