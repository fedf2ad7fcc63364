/**
 * The admin API against a real control-plane process: auth, the uniform error body,
 * precise validation errors, optimistic concurrency, and the OpenAPI description.
 */
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSnapshot } from '../../common/config/parse.js';
import { Processes, waitUntil } from '../support/index.js';
import { createToken, startControlPlane, testSource, type ControlPlaneProcess } from './harness.js';

const procs = new Processes();
let cp: ControlPlaneProcess;

beforeAll(async () => {
  // No resync hold: its refusals of unknown subsets would be 503s to try again (resync-refusals.test.ts).
  cp = await startControlPlane(procs, { args: ['--max-body', '4KiB', '--resync-hold', '0s'] });
});
afterAll(() => procs.killAll());

async function call(method: string, path: string, init: { body?: string; token?: string | null; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...init.headers };
  const token = init.token === undefined ? cp.adminToken : init.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${cp.adminUrl}${path}`, { method, headers, body: init.body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as any) : undefined };
}

function expectError(res: { status: number; body: any }, status: number, code: string, message: RegExp) {
  expect(res.status).toBe(status);
  expect(res.body.error.code).toBe(code);
  expect(res.body.error.message).toMatch(message);
}

describe('admin API', () => {
  it('answers healthz and leaves reads open', async () => {
    expect((await call('GET', '/healthz', { token: null })).body).toEqual({ status: 'ok' });
    expect((await call('GET', '/api/v1/services', { token: null })).status).toBe(200);
  });

  it('refuses writes without a token or with a wrong one', async () => {
    const body = JSON.stringify({ timeout: '2s' });
    const missing = await call('PUT', '/api/v1/services/orders/policy', { body, token: null });
    expectError(missing, 401, 'unauthorized', /missing Authorization/);
    expect(missing.headers.get('www-authenticate')).toMatch(/Bearer/);
    expectError(await call('PUT', '/api/v1/services/orders/policy', { body, token: 'nope' }), 401, 'unauthorized', /invalid admin token/);
    expectError(await call('PUT', '/api/v1/services/orders/policy', { body, headers: { authorization: 'Basic abc' }, token: null }), 401, 'unauthorized', /Bearer/);
    expectError(await call('POST', '/api/v1/tokens', { body: JSON.stringify({ service: 'orders' }), token: null }), 401, 'unauthorized', /missing/);
  });

  it('rejects malformed JSON, wrong content types and empty bodies', async () => {
    expectError(await call('PUT', '/api/v1/services/orders/policy', { body: '{"timeout": ' }), 400, 'bad-request', /not valid JSON/);
    expectError(await call('PUT', '/api/v1/services/orders/policy', { body: '' }), 400, 'bad-request', /empty/);
    expectError(
      await call('PUT', '/api/v1/services/orders/policy', { body: 'timeout=2s', headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
      415,
      'unsupported-media-type',
      /application\/json/,
    );
    const gzipped = await fetch(`${cp.adminUrl}/api/v1/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cp.adminToken}`, 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: gzipSync(JSON.stringify({ service: 'orders' })),
    });
    const withBom = await call('POST', '/api/v1/tokens', { body: `\uFEFF${JSON.stringify({ service: 'orders' })}` });
    expect([withBom.status, withBom.body.service]).toEqual([201, 'orders']);
    expect(gzipped.status).toBe(415);
    expect(gzipped.headers.get('accept-encoding')).toBe('identity');
    expect(((await gzipped.json()) as { error: unknown }).error).toEqual({
      code: 'unsupported-media-type',
      message: 'request bodies are not taken compressed: send the JSON as it is, without Content-Encoding (got gzip)',
    });
  });

  it('refuses a number JSON reads as infinity, which the store would keep as null and a restart then refuse', async () => {
    const infinite = await call('PUT', '/api/v1/services/infinite/policy', { body: '{"retries": {"budget": {"minPerSecond": 1e400}}}' });
    expectError(infinite, 422, 'invalid', /^retries\.budget\.minPerSecond: /);
    expect(infinite.body.error.problems).toEqual(['retries.budget.minPerSecond: must be a finite number (JSON reads one as large as 1e400 as infinity)']);
    expect((await call('GET', '/api/v1/services/infinite/policy')).status).toBe(404);
  });

  it('rejects oversize bodies with 413', async () => {
    const huge = JSON.stringify({ subsets: Object.fromEntries(Array.from({ length: 400 }, (_, i) => [`s${i}`, { version: `v${i}` }])) });
    expect(huge.length).toBeGreaterThan(4096);
    expectError(await call('PUT', '/api/v1/services/orders/policy', { body: huge }), 413, 'payload-too-large', /limit of 4096 bytes/);
    // The server is still fine afterwards.
    expect((await call('GET', '/healthz')).status).toBe(200);
  });

  it('names the field of every validation error (422)', async () => {
    const unknown = await call('PUT', '/api/v1/services/orders/policy', { body: JSON.stringify({ timeout: '2s', retrys: {} }) });
    expectError(unknown, 422, 'invalid', /unknown field "retrys"/);
    const nested = await call('PUT', '/api/v1/services/orders/policy', { body: JSON.stringify({ retries: { attempts: 'x' }, timeout: 'soon' }) });
    expect(nested.status).toBe(422);
    expect(nested.body.error.problems).toEqual(expect.arrayContaining([expect.stringMatching(/^retries\.attempts: /), expect.stringMatching(/^timeout: invalid duration "soon"/)]));
    const endpoints = await call('PUT', '/api/v1/services/orders/policy', { body: JSON.stringify({ endpoints: [] }) });
    expectError(endpoints, 422, 'invalid', /unknown field "endpoints"/);
  });

  it("takes a rate limit in a service's policy, pushed to its sidecars, and refuses one that would never apply, naming the field", async () => {
    const put = (policy: unknown) => call('PUT', '/api/v1/services/limited/policy', { body: JSON.stringify(policy) });
    expectError(await put({ rateLimit: { requestsPerSecond: 10, perSource: { requestsPerSecond: 20 } } }), 422, 'invalid', /^rateLimit\.perSource\.requestsPerSecond: 20 is above the total requestsPerSecond \(10\)/);
    expectError(await put({ rateLimit: { requestsPerSecond: 0 } }), 422, 'invalid', /^rateLimit\.requestsPerSecond: must be greater than 0/);
    const rateLimit = { requestsPerSecond: 10, sources: { web: { requestsPerSecond: 2 } } };
    const written = await put({ rateLimit });
    expect(written.status).toBe(200);
    expect(written.body.rateLimit).toEqual(rateLimit);
    const pushed: unknown[] = [];
    const sidecar = testSource(cp, { service: 'limited', instanceId: 'limited-1', token: await createToken(cp, 'limited') });
    void sidecar.start((raw) => void pushed.push((raw as { services: Record<string, { rateLimit?: unknown }> }).services.limited?.rateLimit));
    try {
      await waitUntil(() => pushed.length > 0, { what: 'a snapshot' });
      expect(parseSnapshot({ services: { limited: { rateLimit: pushed.at(-1) } } }).services.limited!.rateLimit).toEqual({ requestsPerSecond: 10, burst: 10, sources: { web: { requestsPerSecond: 2, burst: 2 } } });
    } finally {
      await sidecar.close();
    }
  });

  it('refuses a malformed service name in the path as 400 naming the parameter, on every route alike', async () => {
    const cases: [string, string][] = [
      ['GET', '/api/v1/services/BAD'],
      ['GET', '/api/v1/services/BAD/policy'],
      ['PUT', '/api/v1/services/BAD/policy'],
      ['DELETE', '/api/v1/services/BAD/policy'],
      ['GET', '/api/v1/routes/BAD'],
      ['PUT', '/api/v1/routes/BAD/split'],
      ['GET', '/api/v1/canaries/BAD'],
      ['DELETE', '/api/v1/canaries/BAD'],
    ];
    for (const [method, path] of cases) {
      const res = await call(method, path, { body: method === 'PUT' ? '{}' : undefined });
      expect([res.status, res.body.error], `${method} ${path}`).toEqual([400, { code: 'bad-request', message: expect.stringMatching(/^\{(name|service)\} must be a DNS label: .* \(got "BAD"\)$/) }]);
    }
    expectError(await call('GET', '/api/v1/services/%zz/policy'), 400, 'bad-request', /^\{name\} is not valid percent-encoding \(got "%zz"\)$/);
  });

  it('answers a request target no URL parser takes with 400, and logs no error', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(cp.httpPort, '127.0.0.1', () => socket.end('GET http://[bad HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual({ error: { code: 'bad-request', message: 'malformed request target "http://[bad"' } });
    expect(cp.child.output()).not.toMatch(/Invalid URL|admin API handler failed/);
  });

  it('checks splits: weights sum to 100, subsets must be known', async () => {
    const sum = await call('PUT', '/api/v1/routes/shop/split', { body: JSON.stringify({ v1: 90, v2: 20 }) });
    expectError(sum, 422, 'invalid', /weights must sum to 100/);
    const unknown = await call('PUT', '/api/v1/routes/shop/split', { body: JSON.stringify({ v1: 90, v9: 10 }) });
    expectError(unknown, 422, 'invalid', /v1: unknown subset "v1" of shop.*v9: unknown subset "v9"/);
    const routes = await call('PUT', '/api/v1/routes/shop', { body: JSON.stringify([{ match: { pathPrefix: '/' }, split: { v3: 100 } }]) });
    expectError(routes, 422, 'invalid', /^\[0\]\.split\.v3: unknown subset "v3"/);

    const policy = await call('PUT', '/api/v1/services/shop/policy', { body: JSON.stringify({ subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } } }) });
    expect(policy.status).toBe(200);
    const ok = await call('PUT', '/api/v1/routes/shop/split', { body: JSON.stringify({ v1: 90, v2: 10 }) });
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual([{ match: { pathPrefix: '/' }, split: { v1: 90, v2: 10 } }]);
    expect(ok.headers.get('skein-snapshot-version')).toMatch(/^\d+$/);
    // A subset in use cannot be removed from the policy.
    const shrink = await call('PUT', '/api/v1/services/shop/policy', { body: JSON.stringify({ subsets: { v1: { version: 'v1' } } }) });
    expectError(shrink, 422, 'invalid', /^routes\[0\]\.split\.v2: unknown subset "v2"/);
  });

  it('checks a policy write or delete only for what it breaks in the routes, not for what they already miss', async () => {
    const put = (policy: unknown) => call('PUT', '/api/v1/services/catalog/policy', { body: JSON.stringify(policy) });
    expect((await put({ subsets: { v1: { version: 'v1' } } })).status).toBe(200);
    // v2 is known only while an instance with version=v2 is connected.
    const v2 = testSource(cp, { service: 'catalog', instanceId: 'catalog-v2', version: 'v2', token: await createToken(cp, 'catalog') });
    void v2.start(() => {});
    const instances = async () => (await call('GET', '/api/v1/services/catalog')).body.instances as unknown[];
    await waitUntil(async () => (await instances()).length === 1, { what: 'the v2 instance' });
    expect((await call('PUT', '/api/v1/routes/catalog', { body: JSON.stringify([{ split: { v1: 100, v2: 0 } }]) })).status).toBe(200);
    await v2.close();
    await waitUntil(async () => (await instances()).length === 0, { what: 'the v2 instance to leave' });

    const changed = await put({ subsets: { v1: { version: 'v1' } }, timeout: '5s' });
    expect(changed.status).toBe(200);
    // What the change itself breaks is still refused, by PUT and DELETE alike, and nothing is written.
    expectError(await put({ timeout: '5s' }), 422, 'invalid', /^routes\[0\]\.split\.v1: unknown subset "v1" of catalog/);
    const deleted = await call('DELETE', '/api/v1/services/catalog/policy');
    expectError(deleted, 422, 'invalid', /^routes\[0\]\.split\.v1: unknown subset "v1" of catalog/);
    expect((await call('GET', '/api/v1/services/catalog/policy')).body).toEqual(changed.body);
  });

  it('sets the split on the catch-all rule and keeps the others', async () => {
    await call('PUT', '/api/v1/services/cart/policy', { body: JSON.stringify({ subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } } }) });
    const rules = [{ name: 'canary-header', match: { headers: { 'x-canary': 'true' } }, split: { v2: 100 } }, { match: { pathPrefix: '/' }, split: { v1: 100 } }];
    expect((await call('PUT', '/api/v1/routes/cart', { body: JSON.stringify(rules) })).status).toBe(200);
    const res = await call('PUT', '/api/v1/routes/cart/split', { body: JSON.stringify({ v1: 75, v2: 25 }) });
    expect(res.body).toEqual([rules[0], { match: { pathPrefix: '/' }, split: { v1: 75, v2: 25 } }]);
  });

  it('refuses a write whose If-Match is stale (optimistic concurrency)', async () => {
    const first = await call('PUT', '/api/v1/services/search/policy', { body: JSON.stringify({ timeout: '1s' }) });
    const etag = first.headers.get('etag')!;
    expect(etag).toMatch(/^"\d+"$/);
    const read = await call('GET', '/api/v1/services/search/policy', { token: null });
    expect(read.headers.get('etag')).toBe(etag);
    expect(read.body).toEqual({ timeout: '1s' });
    // Operator A writes with the ETag it read: fine. Operator B, with the same (now stale) ETag: refused.
    const a = await call('PUT', '/api/v1/services/search/policy', { body: JSON.stringify({ timeout: '2s' }), headers: { 'if-match': etag } });
    expect(a.status).toBe(200);
    const b = await call('PUT', '/api/v1/services/search/policy', { body: JSON.stringify({ timeout: '3s' }), headers: { 'if-match': etag } });
    expectError(b, 412, 'precondition-failed', /changed since you read it/);
    expect((await call('GET', '/api/v1/services/search/policy')).body).toEqual({ timeout: '2s' });
    const create = await call('PUT', '/api/v1/services/search/policy', { body: JSON.stringify({}), headers: { 'if-none-match': '*' } });
    expectError(create, 412, 'precondition-failed', /changed since you read it/);
    const del = await call('DELETE', '/api/v1/services/search/policy', { headers: { 'if-match': etag } });
    expect(del.status).toBe(412);
    expect((await call('DELETE', '/api/v1/services/search/policy', { headers: { 'if-match': a.headers.get('etag')! } })).status).toBe(204);
    expectError(await call('GET', '/api/v1/services/search/policy'), 404, 'not-found', /no policy stored for search/);
  });

  it('answers unknown endpoints and methods with the error body', async () => {
    expectError(await call('GET', '/api/v1/nothing'), 404, 'not-found', /no such endpoint/);
    const res = await call('POST', '/api/v1/intentions', { body: '{}' });
    expectError(res, 405, 'method-not-allowed', /allowed: GET, PUT/);
    expect(res.headers.get('allow')).toBe('GET, PUT');
    // A doubled slash is part of the path, not a host: the error names the path as sent.
    expectError(await call('GET', '//api/v1/routes/shop'), 404, 'not-found', /^no such endpoint: \/\/api\/v1\/routes\/shop$/);
    // Past node's header limit, the answer is still the error body, not a bare status line.
    expectError(await call('GET', `/api/v1/services?pad=${'x'.repeat(20_000)}`), 431, 'header-too-large', /over the size limit/);
  });

  it('refuses a malformed service filter of the proxies list as 400 naming it, and lists none for an unknown one', async () => {
    expectError(await call('GET', '/api/v1/proxies?service=NOPE'), 400, 'bad-request', /^service must be a DNS label.*\(got "NOPE"\)$/);
    const unknown = await call('GET', '/api/v1/proxies?service=nobody');
    expect(unknown.status).toBe(200);
    expect(unknown.body.proxies).toEqual([]);
  });

  it('stores intentions and issues bootstrap tokens', async () => {
    const intentions = { defaultAction: 'deny', rules: [{ source: 'gateway', destination: 'orders', action: 'allow' }] };
    expect((await call('PUT', '/api/v1/intentions', { body: JSON.stringify(intentions) })).status).toBe(200);
    expect((await call('GET', '/api/v1/intentions')).body).toEqual(intentions);
    expectError(await call('PUT', '/api/v1/intentions', { body: JSON.stringify({ defaultAction: 'maybe' }) }), 422, 'invalid', /^defaultAction: /);
    const token = await call('POST', '/api/v1/tokens', { body: JSON.stringify({ service: 'orders', ttl: '1h' }) });
    expect(token.status).toBe(201);
    expect(token.body.service).toBe('orders');
    expect(token.body.token).toMatch(/^skt_/);
    expect(Date.parse(token.body.expiresAt) - Date.now()).toBeGreaterThan(59 * 60_000);
    expectError(await call('POST', '/api/v1/tokens', { body: JSON.stringify({ service: 'orders', ttl: '0s' }) }), 422, 'invalid', /^ttl: /);
    // A bad duration is one problem, not also "must be between 1s and 365 days" checked on nothing.
    const badTtl = await call('POST', '/api/v1/tokens', { body: JSON.stringify({ service: 'orders', ttl: 'abc' }) });
    expectError(badTtl, 422, 'invalid', /^ttl: invalid duration "abc"/);
    expect(badTtl.body.error.problems).toEqual(['ttl: invalid duration "abc" (use e.g. "250ms", "3s", "1m", or a number of milliseconds)']);
    // JSON.parse takes 1e400 as Infinity, which JSON prints as null: the message says what it was.
    const hugeTtl = await call('POST', '/api/v1/tokens', { body: '{"service": "orders", "ttl": 1e400}' });
    expect(hugeTtl.body.error.problems).toEqual(['ttl: invalid duration: a number too large to be read (JSON takes it as infinity); give a number of milliseconds or a string such as "24h"']);
  });

  it('explains a routing decision with the policy in force', async () => {
    await call('PUT', '/api/v1/services/books/policy', { body: JSON.stringify({ timeout: '2s', retries: { budget: { ratio: 0.5, minPerSecond: 3 } }, subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } } }) });
    const rules = [
      { name: 'canary', match: { headers: { 'x-canary': 'true' } }, split: { v2: 100 }, timeout: '500ms', retries: { attempts: 1 } },
      { name: 'main', match: { pathPrefix: '/' }, split: { v1: 90, v2: 10 } },
    ];
    await call('PUT', '/api/v1/routes/books', { body: JSON.stringify(rules) });
    const plain = await call('GET', '/api/v1/explain?service=books&method=get&path=/list');
    expect(plain.body.matched.name).toBe('main');
    expect(plain.body.skipped).toEqual([{ index: 0, name: 'canary', reasons: [expect.stringMatching(/x-canary/)] }]);
    expect(plain.body.split.map((s: { subset: string; weight: number }) => [s.subset, s.weight])).toEqual([['v1', 90], ['v2', 10]]);
    expect(plain.body.policy.timeout).toBe('2s');
    const canary = await call('GET', '/api/v1/explain?service=books&path=/list&header=x-canary:true');
    expect(canary.body.matched.name).toBe('canary');
    expect(canary.body.policy.timeout).toBe('500ms');
    // A rule's retries with the one budget its requests draw from: the service's.
    expect(canary.body.policy.retries).toMatchObject({ attempts: 1, budget: { ratio: 0.5, minPerSecond: 3 } });
    expect(plain.body.policy.retries).toMatchObject({ attempts: 2, budget: { ratio: 0.5, minPerSecond: 3 } });
    const withBudget = [{ ...rules[1], retries: { budget: { ratio: 1 } } }];
    expectError(await call('PUT', '/api/v1/routes/books', { body: JSON.stringify(withBudget) }), 422, 'invalid', /^\[0\]\.retries\.budget: the retry budget is the destination's/);
    expectError(await call('GET', '/api/v1/explain?path=/'), 400, 'bad-request', /^give the service to explain/);
    // A name no service can have is refused as every route refuses a malformed parameter; a well-formed unknown one is explained (no route).
    expectError(await call('GET', '/api/v1/explain?service=NOPE&path=/'), 400, 'bad-request', /^service must be a DNS label.*\(got "NOPE"\)$/);
    expectError(await call('GET', '/api/v1/explain?service=books&path=noslash'), 400, 'bad-request', /^path must start with "\/" \(got "noslash"\)$/);
    expectError(await call('GET', '/api/v1/explain?service=books&header=x-canary:true&header=nocolon'), 400, 'bad-request', /^header must be NAME:VALUE \(got "nocolon"\)$/);
    expect((await call('GET', '/api/v1/explain?service=nope&path=/')).body.known).toBe(false);
  });

  it('refuses an explain parameter given empty or twice as 400 naming it, not the default or the first value in its place', async () => {
    for (const name of ['service', 'method', 'path']) {
      const query = new URLSearchParams({ service: 'books', method: 'GET', path: '/list' });
      query.set(name, '');
      expectError(await call('GET', `/api/v1/explain?${query}`), 400, 'bad-request', new RegExp(`^${name} must not be empty \\(got ""\\)$`));
    }
    expectError(await call('GET', '/api/v1/explain?service=books&service=NOPE'), 400, 'bad-request', /^service must be given once \(got "books", "NOPE"\)$/);
    expectError(await call('GET', '/api/v1/explain?service=books&method=GET&method=POST'), 400, 'bad-request', /^method must be given once \(got "GET", "POST"\)$/);
    expectError(await call('GET', '/api/v1/explain?service=books&path=/a&path='), 400, 'bad-request', /^path must be given once \(got "\/a", ""\)$/);
    // Left out, method and path are GET and /; header may repeat (a repeated header line).
    const defaults = await call('GET', '/api/v1/explain?service=books&header=x-a:1&header=x-a:2');
    expect(defaults.status).toBe(200);
    expect(defaults.body.request).toEqual({ method: 'GET', path: '/', headers: { 'x-a': '1, 2' } });
  });

  it('refuses a filter given twice on the list and observability routes, and takes one given empty as not given there', async () => {
    for (const [path, name] of [
      ['/api/v1/proxies?service=books&service=NOPE', 'service'],
      ['/api/v1/stats?service=books&service=orders', 'service'],
      ['/api/v1/traces?limit=5&limit=abc', 'limit'],
      ['/api/v1/tap?service=books&service=NOPE', 'service'],
      ['/api/v1/tap?service=books&status=5xx&status=', 'status'],
    ] as const) {
      expectError(await call('GET', path), 400, 'bad-request', new RegExp(`^${name} must be given once \\(got `));
    }
    for (const path of ['/api/v1/proxies?service=', '/api/v1/stats?service=', '/api/v1/traces?service=&limit=']) expect((await call('GET', path)).status, path).toBe(200);
  });

  it('describes every served route in openapi.json', async () => {
    const doc = (await call('GET', '/api/v1/openapi.json')).body;
    const expected = [
      ['get', '/healthz'],
      ['get', '/api/v1/services'],
      ['get', '/api/v1/services/{name}/policy'],
      ['put', '/api/v1/services/{name}/policy'],
      ['delete', '/api/v1/services/{name}/policy'],
      ['get', '/api/v1/routes/{service}'],
      ['put', '/api/v1/routes/{service}'],
      ['delete', '/api/v1/routes/{service}'],
      ['put', '/api/v1/routes/{service}/split'],
      ['get', '/api/v1/intentions'],
      ['put', '/api/v1/intentions'],
      ['post', '/api/v1/apply'],
      ['post', '/api/v1/apply/check'],
      ['get', '/api/v1/proxies'],
      ['post', '/api/v1/tokens'],
      ['get', '/api/v1/explain'],
    ];
    for (const [method, path] of expected) expect(doc.paths[path!]?.[method!], `${method} ${path}`).toBeDefined();
    expect(doc.paths['/api/v1/routes/{service}/split'].put.requestBody.content['application/json'].schema).toBeDefined();
    expect(doc.paths['/api/v1/tokens'].post.security).toEqual([{ bearer: [] }]);
    expect(doc.paths['/api/v1/apply'].post.summary).toMatch(/^Apply a whole file \(\{services, routes, intentions\}\): judged by the state it leaves behind, then written all at once/);
    expect(Object.keys(doc.paths['/api/v1/apply'].post.requestBody.content['application/json'].schema.properties)).toEqual(['services', 'routes', 'intentions']);
  });
});
