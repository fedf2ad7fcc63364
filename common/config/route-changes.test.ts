/** A route rule's `rewrite`, `requestHeaders` and `responseHeaders`: taken as written, or refused naming the field. */
import { describe, expect, it } from 'vitest';
import { ConfigError, parseSnapshot } from './parse.js';

function rule(fields: Record<string, unknown>): unknown {
  return { routes: { catalog: [{ match: { pathPrefix: '/api/v2/' }, ...fields }] } };
}

function problems(input: unknown): string[] {
  try {
    parseSnapshot(input);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('route rule changes', () => {
  it('takes a rewrite and header changes as written', () => {
    const snap = parseSnapshot(rule({
      rewrite: { pathPrefix: '/v2/', host: 'catalog.internal:8080' },
      requestHeaders: { set: { 'x-api': 'v2' }, add: { 'X-Tag': 'a' }, remove: ['x-debug'] },
      responseHeaders: { set: { 'cache-control': 'no-store' }, remove: ['server'] },
    }));
    const r = snap.routes.catalog![0]!;
    expect(r.rewrite).toEqual({ pathPrefix: '/v2/', host: 'catalog.internal:8080' });
    expect(r.requestHeaders).toEqual({ set: { 'x-api': 'v2' }, add: { 'X-Tag': 'a' }, remove: ['x-debug'] });
    expect(r.responseHeaders).toEqual({ set: { 'cache-control': 'no-store' }, remove: ['server'] });
  });

  it('takes IP authorities and the root prefix', () => {
    expect(() => parseSnapshot(rule({ rewrite: { host: '10.0.0.7' } }))).not.toThrow();
    expect(() => parseSnapshot(rule({ rewrite: { host: '[::1]:8080' } }))).not.toThrow();
    expect(() => parseSnapshot({ routes: { catalog: [{ match: { pathPrefix: '/' }, rewrite: { pathPrefix: '/v2/' } }] } })).not.toThrow();
  });

  it.each([
    ['connection', 'routes.catalog[0].requestHeaders.set.connection: connection cannot be changed: a connection-level (hop-by-hop) header'],
    ['Transfer-Encoding', 'routes.catalog[0].requestHeaders.set.Transfer-Encoding: transfer-encoding cannot be changed'],
    ['content-length', 'routes.catalog[0].requestHeaders.set.content-length: content-length cannot be changed: frames the body'],
    ['upgrade', 'routes.catalog[0].requestHeaders.set.upgrade: upgrade cannot be changed'],
    ['te', 'routes.catalog[0].requestHeaders.set.te: te cannot be changed'],
    ['keep-alive', 'routes.catalog[0].requestHeaders.set.keep-alive: keep-alive cannot be changed'],
    ['proxy-authorization', 'routes.catalog[0].requestHeaders.set.proxy-authorization: proxy-authorization cannot be changed: Proxy-*'],
    ['host', 'routes.catalog[0].requestHeaders.set.host: host cannot be changed: the authority: change it with rewrite.host'],
    [':path', 'routes.catalog[0].requestHeaders.set.:path: :path is a pseudo-header: change the path with rewrite.pathPrefix'],
    ['x-skein-attempt', "routes.catalog[0].requestHeaders.set.x-skein-attempt: x-skein-attempt cannot be changed: Skein's own header"],
    ['x-skein-mirror', "routes.catalog[0].requestHeaders.set.x-skein-mirror: x-skein-mirror cannot be changed: Skein's own header"],
    ['traceparent', "routes.catalog[0].requestHeaders.set.traceparent: traceparent cannot be changed: the sidecar's own"],
    ['x-b3-traceid', "routes.catalog[0].requestHeaders.set.x-b3-traceid: x-b3-traceid cannot be changed: the sidecar's own"],
    ['x-request-id', "routes.catalog[0].requestHeaders.set.x-request-id: x-request-id cannot be changed: the sidecar's own"],
    ['x-forwarded-client-cert', 'routes.catalog[0].requestHeaders.set.x-forwarded-client-cert: x-forwarded-client-cert cannot be changed'],
    ['grpc-timeout', "routes.catalog[0].requestHeaders.set.grpc-timeout: grpc-timeout cannot be changed: the sidecar reads it for the gRPC call's deadline"],
    ['bad name', 'routes.catalog[0].requestHeaders.set.bad name: "bad name" is no header name'],
  ])('refuses a request header change of %s, naming it', (name, message) => {
    const got = problems(rule({ requestHeaders: { set: { [name]: 'x' } } }));
    expect(got).toHaveLength(1);
    expect(got[0]).toContain(message);
  });

  it('refuses the same names in remove and add, and the sidecar-read gRPC status in responses', () => {
    expect(problems(rule({ requestHeaders: { remove: ['x-ok', 'X-Skein-Reason'] } }))).toEqual([expect.stringContaining("routes.catalog[0].requestHeaders.remove[1]: x-skein-reason cannot be changed: Skein's own header")]);
    expect(problems(rule({ responseHeaders: { add: { 'grpc-status': '0' } } }))).toEqual([expect.stringContaining("routes.catalog[0].responseHeaders.add.grpc-status: grpc-status cannot be changed: the sidecar reads it for the gRPC call's outcome")]);
    expect(problems(rule({ responseHeaders: { set: { 'content-length': '1' } } }))).toEqual([expect.stringContaining('routes.catalog[0].responseHeaders.set.content-length: content-length cannot be changed')]);
  });

  it('refuses a header named twice where one would undo the other', () => {
    expect(problems(rule({ requestHeaders: { set: { 'x-a': '1' }, remove: ['X-A'] } }))).toEqual(['routes.catalog[0].requestHeaders.remove[0]: x-a is in set already: name a header in one of set and remove, once']);
    expect(problems(rule({ requestHeaders: { add: { 'x-a': '1', 'X-A': '2' } } }))).toEqual(['routes.catalog[0].requestHeaders.add.X-A: x-a is in add already: add one line per name']);
    // set then add is one line replaced, one appended: meant, and taken.
    expect(() => parseSnapshot(rule({ requestHeaders: { set: { 'x-a': '1' }, add: { 'x-a': '2' } } }))).not.toThrow();
  });

  it.each([
    ['a\r\nx-evil: 1', 'CR or LF (it would end the header line)'],
    ['a\nb', 'CR or LF'],
    ['a\u0000b', 'the control character U+0000'],
    ['a\u007fb', 'the control character U+007F'],
    ['café', 'the non-ASCII character "é"'],
    [' padded', 'must not start or end with whitespace'],
  ])('refuses the value %j, naming the header', (value, message) => {
    const got = problems(rule({ responseHeaders: { add: { 'x-a': value } } }));
    expect(got).toHaveLength(1);
    expect(got[0]).toMatch(/^routes\.catalog\[0\]\.responseHeaders\.add\.x-a: /);
    expect(got[0]).toContain(message);
  });

  it('refuses a prefix rewrite on a rule that matches no prefix', () => {
    const on = (match: Record<string, unknown>) => problems({ routes: { catalog: [{ match, rewrite: { pathPrefix: '/v2/' } }] } });
    expect(on({ path: '/api' })).toEqual([expect.stringMatching(/^routes\.catalog\[0\]\.rewrite\.pathPrefix: replaces the prefix the rule matched, and this rule's match has an exact path/)]);
    expect(on({ pathRegex: '/api/.*' })).toEqual([expect.stringContaining("routes.catalog[0].rewrite.pathPrefix: replaces the prefix the rule matched, and this rule's match has a pathRegex")]);
    expect(on({})).toEqual([expect.stringContaining("this rule's match has no pathPrefix")]);
  });

  it.each([
    ['/v2//', 'write "/v2/"'],
    ['/v2/../x/', 'write "/x/"'],
    ['/v2/.', 'write "/v2/"'],
    ['/%7Ev2/', 'write "/~v2/"'],
    ['/v2%2', 'must not end inside a percent-escape'],
    ['/v2?x=1', 'without a query or fragment'],
    ['/v2/%00/', 'makes paths the sidecar refuses (400 bad-request)'],
    ['v2/', 'must start with "/"'],
  ])('refuses the prefix rewrite %j, which makes paths normalisation would change or refuse', (value, message) => {
    const got = problems(rule({ rewrite: { pathPrefix: value } }));
    expect(got).toHaveLength(1);
    expect(got[0]).toMatch(/^routes\.catalog\[0\]\.rewrite\.pathPrefix: /);
    expect(got[0]).toContain(message);
  });

  it('refuses a rewrite ending in "/" after a match that does not (a doubled slash)', () => {
    expect(problems({ routes: { catalog: [{ match: { pathPrefix: '/api' }, rewrite: { pathPrefix: '/v2/' } }] } })).toEqual([expect.stringContaining('routes.catalog[0].rewrite.pathPrefix: ends with "/" where match.pathPrefix "/api" does not')]);
    expect(() => parseSnapshot({ routes: { catalog: [{ match: { pathPrefix: '/api' }, rewrite: { pathPrefix: '/v2' } }] } })).not.toThrow();
  });

  it.each(['http://catalog', 'catalog:0', 'catalog:99999', 'a b', '::1', ''])('refuses the host rewrite %j', (host) => {
    expect(problems(rule({ rewrite: { host } }))).toEqual([expect.stringMatching(/^routes\.catalog\[0\]\.rewrite\.host: must be a host name or IP address with an optional port/)]);
  });

  it('refuses an empty rewrite and unknown fields', () => {
    expect(problems(rule({ rewrite: {} }))).toEqual(['routes.catalog[0].rewrite: give pathPrefix, host or both']);
    expect(problems(rule({ requestHeaders: { append: { a: 'b' } } }))).toEqual([expect.stringContaining('routes.catalog[0].requestHeaders')]);
  });
});
