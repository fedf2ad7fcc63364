import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError, parseAuthoredSnapshot, parseSnapshot, validate } from './parse.js';
import { duration } from './schema.js';
import { formatDuration, parseDuration } from './duration.js';

function problems(input: unknown, parse = parseSnapshot): string[] {
  try {
    parse(input);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('parseSnapshot', () => {
  it('fills every default of SPEC §4', () => {
    const snap = parseSnapshot('services:\n  catalog: {}\n');
    const cat = snap.services.catalog!;
    expect(cat.protocol).toBe('http');
    expect(cat.lb).toBe('least-request');
    expect(cat.timeout).toBe(3000);
    expect(cat.retries).toEqual({
      attempts: 2,
      perTryTimeout: 1000,
      on: ['connect-failure', 'reset', 'gateway-error'],
      backoff: { base: 25, max: 250 },
      budget: { ratio: 0.2, minPerSecond: 10 },
    });
    expect(cat.circuitBreaker).toEqual({ errorThresholdPercentage: 50, volumeThreshold: 20, rollingWindow: 10_000, resetTimeout: 5000, maxConcurrent: 1024 });
    expect(cat.outlierDetection).toEqual({ consecutiveErrors: 5, baseEjectionTime: 30_000, maxEjectionPercent: 50 });
    expect(snap.intentions).toBeUndefined();
  });

  it('fills the route stages\' defaults of SPEC §4: fault and mirror percentages are 0 unless given', () => {
    const snap = parseSnapshot('routes:\n  catalog:\n    - match: { pathPrefix: / }\n      fault: { delay: { duration: 1s }, abort: {} }\n      mirror: { subset: v2 }\n');
    const rule = snap.routes.catalog![0]!;
    expect(rule.fault).toEqual({ delay: { percent: 0, duration: 1000 }, abort: { percent: 0, status: 503 } });
    expect(rule.mirror).toEqual({ subset: 'v2', percent: 0 });
  });

  it('refuses an empty document (empty, blank or comment-only text, null) and takes {} as the empty snapshot', () => {
    for (const text of ['', '  \n\t\n', '# only a comment\n', '---\n', 'null', '~']) {
      expect(problems(text)).toEqual(['config: empty (no YAML or JSON document in it); write {} for a snapshot with nothing in it']);
    }
    expect(problems(null)).toHaveLength(1);
    expect(() => parseSnapshot('', 'mesh.yaml')).toThrow(/^mesh\.yaml: empty/);
    expect(parseSnapshot('{}')).toMatchObject({ services: {}, routes: {} });
  });

  it('accepts JSON as well as YAML', () => {
    const snap = parseSnapshot('{"version": 7, "routes": {"catalog": [{"split": {"v1": 100}}]}}');
    expect(snap.version).toBe('7');
    expect(snap.routes.catalog![0]!.match).toEqual({});
  });

  it('names the exact path of a split that does not sum to 100', () => {
    const yaml = `
routes:
  catalog:
    - match: { headers: { x-canary: "true" } }
      split: { v2: 100 }
    - match: { pathPrefix: / }
      split: { v1: 90, v2: 5 }
`;
    expect(problems(yaml)).toEqual(['routes.catalog[1].split: weights must sum to 100']);
  });

  it('rejects unknown fields, naming them', () => {
    expect(problems({ services: { catalog: { retries: { attempts: 1, tries: 3 } } } })).toEqual([
      'services.catalog.retries: unknown field "tries"',
    ]);
    expect(problems({ servicez: {} })[0]).toBe('(root): unknown field "servicez"');
  });

  it("refuses a rule's retry budget, which would not take effect (the budget is the destination's), and keeps the rest of its retries", () => {
    expect(problems({ routes: { catalog: [{ retries: { attempts: 1, budget: { ratio: 1 } } }] } })).toEqual([
      "routes.catalog[0].retries.budget: the retry budget is the destination's: set it in the service's retries, not a rule's",
    ]);
    const rule = parseSnapshot({ routes: { catalog: [{ retries: { attempts: 1 } }] } }).routes.catalog![0]!;
    expect(rule.retries).toEqual({ attempts: 1, perTryTimeout: 1000, on: ['connect-failure', 'reset', 'gateway-error'], backoff: { base: 25, max: 250 } });
  });

  it('takes statuses from 400 to 599 as retry conditions, in a service\'s retries and a rule\'s, and refuses others naming the entry', () => {
    const snap = parseSnapshot('services:\n  catalog:\n    retries: { on: [connect-failure, reset, 503, 429] }\nroutes:\n  catalog:\n    - retries: { on: [409, 5xx] }\n');
    expect(snap.services.catalog!.retries.on).toEqual(['connect-failure', 'reset', 503, 429]);
    expect(snap.routes.catalog![0]!.retries!.on).toEqual([409, '5xx']);
    expect(problems({ services: { catalog: { retries: { on: ['connect-failure', 'reset', 503, 200] } } } })).toEqual([
      'services.catalog.retries.on[3]: 200 is not an error status: give a status from 400 to 599',
    ]);
    expect(problems({ routes: { catalog: [{ retries: { on: [600, 429.5, 399] } }] } })).toEqual([
      'routes.catalog[0].retries.on[0]: 600 is not an error status: give a status from 400 to 599',
      'routes.catalog[0].retries.on[1]: 429.5 is not an error status: give a status from 400 to 599',
      'routes.catalog[0].retries.on[2]: 399 is not an error status: give a status from 400 to 599',
    ]);
    const conditions = 'give one of connect-failure, reset, gateway-error, 5xx, unavailable, deadline-exceeded, or a status from 400 to 599';
    expect(problems({ services: { catalog: { retries: { on: ['retriable-status-codes', '503', true] } } } })).toEqual([
      `services.catalog.retries.on[0]: "retriable-status-codes" is no retry condition: ${conditions}`,
      `services.catalog.retries.on[1]: "503" is no retry condition: ${conditions}`,
      `services.catalog.retries.on[2]: true is no retry condition: ${conditions}`,
    ]);
  });

  it('refuses a status written twice, or one a named condition retries already, naming both entries', () => {
    expect(problems({ services: { catalog: { retries: { on: [429, 'reset', 429] } } } })).toEqual(['services.catalog.retries.on[2]: 429 is listed already (on[0])']);
    expect(problems({ services: { catalog: { retries: { on: [503, 'gateway-error', 500, '5xx'] } } } })).toEqual([
      'services.catalog.retries.on[0]: 503 is retried already by 5xx (on[3]): leave it out',
      'services.catalog.retries.on[2]: 500 is retried already by 5xx (on[3]): leave it out',
    ]);
    expect(problems({ routes: { catalog: [{ retries: { on: ['gateway-error', 504] } }] } })).toEqual([
      'routes.catalog[0].retries.on[1]: 504 is retried already by gateway-error (on[0]): leave it out',
    ]);
    // 500 is not a gateway error: gateway-error and 500 retry different answers.
    expect(parseSnapshot({ services: { catalog: { retries: { on: ['gateway-error', 500, 429] } } } }).services.catalog!.retries.on).toEqual(['gateway-error', 500, 429]);
  });

  it('rejects bad durations, regexes and service names', () => {
    expect(problems({ services: { catalog: { timeout: '3 seconds' } } })).toEqual([
      'services.catalog.timeout: invalid duration "3 seconds" (use e.g. "250ms", "3s", "1m", or a number of milliseconds)',
    ]);
    expect(problems({ routes: { catalog: [{ match: { pathRegex: '(' } }] } })[0]).toMatch(/^routes\.catalog\[0\]\.match\.pathRegex: invalid regex/);
    expect(problems({ services: { Catalog_1: {} } })[0]).toMatch(/^services\.Catalog_1: must be a DNS label/);
  });

  it('refuses rules that can never match: RE2-only regex syntax, and paths request normalisation changes, naming what to write', () => {
    const match = (m: unknown) => problems({ routes: { catalog: [{ match: m }] } });
    expect(match({ pathRegex: '/x/[[:digit:]]+' })).toEqual([
      'routes.catalog[0].match.pathRegex: never matches what it means: "[:digit:]" is a POSIX class in RE2; JavaScript has none, and reads it as a class of the characters "[:digit" followed by "]": write 0-9 inside the brackets ("[0-9]" for "[[:digit:]]")',
    ]);
    expect(match({ pathRegex: '/names/\\p{L}+' })[0]).toMatch(/^routes\.catalog\[0\]\.match\.pathRegex: never matches what it means: "\\p" is a Unicode class in RE2, the letter "p" here/);
    expect(match({ pathRegex: '\\A/api\\z' })[0]).toMatch(/"\\A" is a start anchor in RE2, the letter "A" here: write \^, or nothing/);
    expect(match({ headers: { 'x-name': { regex: '[^[:space:]]+' } } })[0]).toMatch(/^routes\.catalog\[0\]\.match\.headers\.x-name\.regex: never matches what it means: "\[:space:\]"/);
    expect(match({ path: '/%7Euser' })).toEqual([
      'routes.catalog[0].match.path: never matches: request paths are normalised before routing (unreserved escapes decoded, slashes merged, dot segments removed), so no request has this one: write "/~user"',
    ]);
    expect(match({ pathPrefix: '/api//v1' })[0]).toMatch(/^routes\.catalog\[0\]\.match\.pathPrefix: never matches: .*write "\/api\/v1"$/);
    expect(match({ path: '/a%00' })[0]).toMatch(/refused \(400 bad-request\) before routing: %00 in the path$/);
    expect(match({ path: '/search?q=1' })[0]).toMatch(/never matches: rules match the path without its query/);
    // Taken: an escaped backslash before p, escapes kept as they came, and prefixes that end mid-segment or mid-escape.
    for (const fine of [{ pathRegex: '/a\\\\p[0-9]+' }, { path: '/pkg/@scope%2Fname' }, { path: '/caf%C3%A9' }, { pathPrefix: '/a/.' }, { pathPrefix: '/a%2' }, { pathPrefix: '/' }]) {
      expect(() => parseSnapshot({ routes: { catalog: [{ match: fine }] } }), JSON.stringify(fine)).not.toThrow();
    }
  });

  it('rejects path and header regexes that may backtrack catastrophically, naming the field', () => {
    expect(problems({ routes: { catalog: [{ match: { pathRegex: '/api/(\\w+/?)+' } }] } })).toEqual([
      'routes.catalog[0].match.pathRegex: may backtrack catastrophically (nested quantifier): "(\\w+/?)+" repeats a group that holds the repeat "\\w+"; a crafted request could block the sidecar for minutes. Rewrite it so no repeated group holds a repeat or alternatives that can start alike, e.g. "/api/[\\w/]+" for "/api/(\\w+/?)+"',
    ]);
    expect(problems({ routes: { catalog: [{ match: { headers: { 'x-id': { regex: '(a|ab)*' } } } }] } })[0]).toMatch(
      /^routes\.catalog\[0\]\.match\.headers\.x-id\.regex: may backtrack catastrophically \(overlapping alternatives\)/,
    );
    expect(problems({ routes: { catalog: [{ match: { pathRegex: '^/a*a*a*a*a*a*b$' } }] } })[0]).toMatch(
      /^routes\.catalog\[0\]\.match\.pathRegex: may backtrack catastrophically \(adjacent repeats\): "a\*" and "a\*" repeat without bound/,
    );
    expect(() => parseSnapshot({ routes: { catalog: [{ match: { pathRegex: '^/api/v[0-9]+/.*' } }, { match: { pathRegex: '/products/[0-9]+', headers: { 'x-v': { regex: 'v[0-9]+' } } } }] } })).not.toThrow();
  });

  it('bounds policy durations at 24h, naming the field (Node fires a timer past 2^31-1 ms after 1 ms)', () => {
    expect(problems({ services: { catalog: { timeout: '1000h' } } })).toEqual(['services.catalog.timeout: must be at most 24h, not 1000h']);
    expect(problems({ services: { catalog: { retries: { perTryTimeout: '25h' }, outlierDetection: { baseEjectionTime: '48h' } } } })).toEqual([
      'services.catalog.retries.perTryTimeout: must be at most 24h, not 25h',
      'services.catalog.outlierDetection.baseEjectionTime: must be at most 24h, not 48h',
    ]);
    expect(problems({ routes: { catalog: [{ timeout: 1e10 }] } })).toEqual(['routes.catalog[0].timeout: must be at most 24h, not 10000000s']);
    expect(parseSnapshot({ services: { catalog: { timeout: '24h' } } }).services.catalog!.timeout).toBe(86_400_000);
  });

  it('takes ring-hash with one hashOn, and refuses either without the other, or hashOn naming nothing or two things', () => {
    const policy = (p: object) => parseSnapshot({ services: { catalog: p } }).services.catalog!;
    expect(policy({ lb: 'ring-hash', hashOn: { header: 'x-user' } }).hashOn).toEqual({ header: 'x-user' });
    expect(policy({ lb: 'ring-hash', hashOn: { cookie: 'sid' } }).lb).toBe('ring-hash');
    expect(() => policy({ lb: 'ring-hash' })).toThrow(/services\.catalog\.hashOn: lb ring-hash needs hashOn/);
    expect(() => policy({ lb: 'random', hashOn: { header: 'x-user' } })).toThrow(/services\.catalog\.hashOn: is read only with lb: ring-hash, not random/);
    expect(() => policy({ hashOn: { query: 'u' } })).toThrow(/not least-request/);
    expect(() => policy({ lb: 'ring-hash', hashOn: {} })).toThrow(/hashOn: give exactly one of header, cookie, query/);
    expect(() => policy({ lb: 'ring-hash', hashOn: { header: 'a', cookie: 'b' } })).toThrow(/give exactly one/);
    expect(() => policy({ lb: 'ring-hash', hashOn: { header: 'x user' } })).toThrow(/hashOn\.header: must be a header name/);
    expect(() => policy({ lb: 'ring-hash', hashOn: { cookie: 'a;b' } })).toThrow(/hashOn\.cookie: must be a cookie name/);
  });

  it('takes a rate limit, burst defaulting to a second of the rate, and refuses one that would admit nothing, naming the field', () => {
    const limit = (r: object) => parseSnapshot({ services: { catalog: { rateLimit: r } } }).services.catalog!.rateLimit;
    expect(parseSnapshot({ services: { catalog: {} } }).services.catalog!.rateLimit).toBeUndefined();
    expect(limit({ requestsPerSecond: 100, burst: 200 })).toEqual({ requestsPerSecond: 100, burst: 200 });
    expect(limit({ requestsPerSecond: 100 })).toEqual({ requestsPerSecond: 100, burst: 100 });
    expect(limit({ requestsPerSecond: 2.5 })).toEqual({ requestsPerSecond: 2.5, burst: 3 });
    expect(limit({ requestsPerSecond: 0.2 })).toEqual({ requestsPerSecond: 0.2, burst: 1 });
    expect(problems({ services: { catalog: { rateLimit: { requestsPerSecond: 0 } } } })).toEqual([
      'services.catalog.rateLimit.requestsPerSecond: must be greater than 0 (leave the limit out for none)',
    ]);
    expect(problems({ services: { catalog: { rateLimit: { requestsPerSecond: 1e400, burst: 0 } } } })).toEqual([
      'services.catalog.rateLimit.requestsPerSecond: must be a finite number (JSON reads one as large as 1e400 as infinity)',
      'services.catalog.rateLimit.burst: must be at least 1: a bucket smaller than one request admits none',
    ]);
    expect(problems({ services: { catalog: { rateLimit: { requestsPerSecond: 1e-300 } } } })).toEqual([
      'services.catalog.rateLimit.requestsPerSecond: must be at least 1/86400 (one request a day), not 1e-300',
    ]);
    expect(limit({ requestsPerSecond: 1 / 86_400 })).toEqual({ requestsPerSecond: 1 / 86_400, burst: 1 });
    expect(problems({ services: { catalog: { rateLimit: { requestsPerSecond: 5, burst: 2.5 } } } })[0]).toMatch(/^services\.catalog\.rateLimit\.burst: /);
    expect(problems({ services: { catalog: { rateLimit: {} } } })).toEqual(['services.catalog.rateLimit: give requestsPerSecond, perSource, sources or routes']);
    expect(problems({ services: { catalog: { rateLimit: { burst: 5, perSource: { requestsPerSecond: 1 } } } } })).toEqual([
      'services.catalog.rateLimit.burst: is the burst of requestsPerSecond, which is not given',
    ]);
    expect(problems({ services: { catalog: { rateLimit: { rps: 5, requestsPerSecond: 5 } } } })).toEqual(['services.catalog.rateLimit: unknown field "rps"']);
  });

  it('takes per-caller limits (perSource, sources by caller), refusing one above the total, which would never apply', () => {
    const limit = (r: object) => parseSnapshot({ services: { catalog: { rateLimit: r } } }).services.catalog!.rateLimit;
    expect(limit({ perSource: { requestsPerSecond: 10 } })).toEqual({ perSource: { requestsPerSecond: 10, burst: 10 } });
    expect(limit({ requestsPerSecond: 100, perSource: { requestsPerSecond: 10, burst: 20 }, sources: { gateway: { requestsPerSecond: 50 } } })).toEqual({
      requestsPerSecond: 100,
      burst: 100,
      perSource: { requestsPerSecond: 10, burst: 20 },
      sources: { gateway: { requestsPerSecond: 50, burst: 50 } },
    });
    expect(problems({ services: { catalog: { rateLimit: { requestsPerSecond: 10, perSource: { requestsPerSecond: 20 }, sources: { gateway: { requestsPerSecond: 11 }, web: { requestsPerSecond: 10 } } } } } })).toEqual([
      'services.catalog.rateLimit.perSource.requestsPerSecond: 20 is above the total requestsPerSecond (10), so it would never apply',
      'services.catalog.rateLimit.sources.gateway.requestsPerSecond: 11 is above the total requestsPerSecond (10), so it would never apply',
    ]);
    expect(problems({ services: { catalog: { rateLimit: { sources: { Gateway: { requestsPerSecond: 1, burst: 0 } } } } } })).toEqual([
      'services.catalog.rateLimit.sources.Gateway: must be a DNS label: lowercase letters, digits and "-", at most 63 characters',
      'services.catalog.rateLimit.sources.Gateway.burst: must be at least 1: a bucket smaller than one request admits none',
    ]);
  });

  it('takes per-route limits with the matches of route rules, refusing a match that never matches as a rule\'s is', () => {
    const limit = (r: object) => parseSnapshot({ services: { catalog: { rateLimit: r } } }).services.catalog!.rateLimit;
    expect(limit({ routes: [{ match: { pathPrefix: '/search', method: 'GET' }, requestsPerSecond: 5 }] })).toEqual({ routes: [{ match: { pathPrefix: '/search', method: 'GET' }, requestsPerSecond: 5, burst: 5 }] });
    expect(problems({ services: { catalog: { rateLimit: { routes: [{ match: { path: '/a//b' }, requestsPerSecond: 0 }, { requestsPerSecond: 1 }] } } } })).toEqual([
      'services.catalog.rateLimit.routes[0].match.path: never matches: request paths are normalised before routing (unreserved escapes decoded, slashes merged, dot segments removed), so no request has this one: write "/a/b"',
      'services.catalog.rateLimit.routes[0].requestsPerSecond: must be greater than 0 (leave the limit out for none)',
      'services.catalog.rateLimit.routes[1].match: Required',
    ]);
  });

  it('refuses a breaker window under 1s, which made opossum tick a timer every millisecond', () => {
    expect(problems({ services: { catalog: { circuitBreaker: { rollingWindow: '0s' } } } })).toEqual(['services.catalog.circuitBreaker.rollingWindow: must be at least 1s, not 0s: the breaker judges the requests of this window']);
    expect(problems({ services: { catalog: { circuitBreaker: { rollingWindow: '500ms' } } } })).toEqual(['services.catalog.circuitBreaker.rollingWindow: must be at least 1s, not 500ms: the breaker judges the requests of this window']);
    expect(parseSnapshot(JSON.stringify({ services: { catalog: { circuitBreaker: { rollingWindow: '1s' } } } })).services.catalog!.circuitBreaker.rollingWindow).toBe(1000);
  });

  it('refuses what could never work at the first request: endpoint addresses, method and header names, backoff, rule names, fractional versions', () => {
    const ep = (address: string) => ({ services: { catalog: { endpoints: [{ address, port: 8080 }] } } });
    expect(problems(ep('http://127.0.0.1:8080'))).toEqual(['services.catalog.endpoints[0].address: must be an IP address or a host name, not "http://127.0.0.1:8080" (no scheme, brackets or port: the port goes in port)']);
    expect(problems(ep('127.0.0.1:8080'))[0]).toMatch(/^services\.catalog\.endpoints\[0\]\.address: must be an IP address or a host name, not "127\.0\.0\.1:8080" \(no scheme/);
    expect(problems(ep('[::1]'))[0]).toMatch(/not "\[::1\]" \(no scheme, brackets or port/);
    expect(problems(ep('no such host'))).toEqual(['services.catalog.endpoints[0].address: must be an IP address or a host name, not "no such host"']);
    for (const good of ['10.0.0.7', '::1', 'fe80::1', 'catalog', 'catalog.default.svc.cluster.local', 'localhost', 'host-1.example.com.']) {
      expect(parseSnapshot(ep(good)).services.catalog!.endpoints![0]!.address).toBe(good);
    }
    const match = (m: object) => ({ routes: { catalog: [{ match: m }] } });
    expect(problems(match({ method: 'FOO BAR' }))).toEqual([expect.stringMatching(/^routes\.catalog\[0\]\.match\.method: must be an HTTP method name/)]);
    expect(problems(match({ method: ['GET', 'P OST'] }))).toEqual([expect.stringMatching(/^routes\.catalog\[0\]\.match\.method\[1\]: must be an HTTP method name/)]);
    expect(problems(match({ headers: { 'bad header': 'x' } }))).toEqual([expect.stringMatching(/^routes\.catalog\[0\]\.match\.headers\.bad header: must be a header name/)]);
    expect(parseSnapshot(match({ method: ['GET', 'PURGE'], headers: { 'x-canary': 'true' } })).routes.catalog![0]!.match.method).toEqual(['GET', 'PURGE']);
    expect(problems({ services: { catalog: { retries: { backoff: { base: '1s', max: '10ms' } } } } })).toEqual(['services.catalog.retries.backoff: base (1s) must not be longer than max (10ms)']);
    // A base alone past the default max (250ms) raises the max to it.
    expect(parseSnapshot({ services: { catalog: { retries: { backoff: { base: '1s' } } } } }).services.catalog!.retries.backoff).toEqual({ base: 1000, max: 1000 });
    expect(problems({ routes: { catalog: [{ name: 'a' }, { name: 'b' }, { name: 'a' }] } })).toEqual(['routes.catalog[2].name: "a" is the name of rule 0 too']);
    expect(problems({ routes: { catalog: [{ name: 'rule-1' }, {}] } })).toEqual(['routes.catalog[1].name: "rule-1" is the name of rule 0 too']);
    expect(problems('version: 1.10\n')).toEqual(['version: 1.1 is a fractional number: quote the version as written (YAML reads 1.10 as the number 1.1)']);
    expect(parseSnapshot('version: "1.10"\n').version).toBe('1.10');
    expect(parseSnapshot('version: 7\n').version).toBe('7');
  });

  it('reports YAML syntax errors with a line number', () => {
    expect(problems('services:\n  catalog: {\n')).toEqual(['config: not valid YAML or JSON at line 3, column 1: Flow map in block collection must be sufficiently indented and end with a }']);
    expect(problems('services: {}\n---\nroutes: {}\n')).toEqual(['config: not valid YAML or JSON at line 2, column 1: a second document starts here (a "---" line); a snapshot is one document']);
  });

  it('refuses an alias bomb as a config problem, not a bare library error', () => {
    const levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 9; i++) levels.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`);
    expect(problems(`${levels.join('\n')}\n`)).toEqual(['config: not valid YAML or JSON: Excessive alias count indicates a resource exhaustion attack']);
  });
});

describe('durations', () => {
  it('parses and formats', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('1m30s')).toBe(90_000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('0s')).toBe(0);
    expect(parseDuration('5')).toBeUndefined();
    expect(parseDuration('')).toBeUndefined();
    expect(formatDuration(90_000)).toBe('90s');
    expect(formatDuration(250)).toBe('250ms');
  });

  it('refuses a duration under 1ms that is not 0: rounded to 0 it would turn a timeout off', () => {
    expect(parseDuration('0.4ms')).toBeUndefined();
    expect(parseDuration('0.5ms')).toBe(1);
    expect(parseDuration('0.0001s')).toBeUndefined();
    expect(problems({ services: { catalog: { timeout: '0.4ms' } } })).toEqual(['services.catalog.timeout: duration "0.4ms" is under 1ms: write 0 to turn it off, or at least 1ms']);
    expect(problems({ services: { catalog: { timeout: 0.2 } } })).toEqual(['services.catalog.timeout: duration 0.2 is under 1ms: write 0 to turn it off, or at least 1ms']);
    // A bare number is milliseconds; 0 turns the timeout off.
    expect(parseSnapshot({ services: { catalog: { timeout: 250 } } }).services.catalog!.timeout).toBe(250);
    expect(parseSnapshot({ services: { catalog: { timeout: 0 } } }).services.catalog!.timeout).toBe(0);
  });

  it('reports a bad duration once, not again through a check chained after it', () => {
    const body = z.object({ ttl: duration.refine((ms) => ms >= 1000, 'must be at least 1s'), other: z.number() }).strict();
    const problemsOf = (value: unknown) => {
      try {
        validate(body, value);
      } catch (err) {
        if (err instanceof ConfigError) return err.problems;
        throw err;
      }
      return [];
    };
    expect(problemsOf({ ttl: 'abc', other: 'x', extra: 1 })).toEqual([
      'ttl: invalid duration "abc" (use e.g. "250ms", "3s", "1m", or a number of milliseconds)',
      'other: Expected number, received string',
      '(root): unknown field "extra"',
    ]);
    expect(problemsOf({ ttl: '10ms', other: 1 })).toEqual(['ttl: must be at least 1s']);
  });

  it('says what is wrong with a number that is no duration, rather than print it as JSON would (null)', () => {
    const body = z.object({ ttl: duration }).strict();
    const problemsOf = (text: string) => {
      try {
        validate(body, JSON.parse(text));
      } catch (err) {
        if (err instanceof ConfigError) return err.problems;
        throw err;
      }
      return [];
    };
    expect(problemsOf('{"ttl": 1e400}')).toEqual(['ttl: invalid duration: a number too large to be read (JSON takes it as infinity); give a number of milliseconds or a string such as "24h"']);
    expect(problemsOf('{"ttl": -1e400}')).toEqual(['ttl: invalid duration -Infinity: a number of milliseconds cannot be negative']);
    expect(problemsOf('{"ttl": -5}')).toEqual(['ttl: invalid duration -5: a number of milliseconds cannot be negative']);
  });
});

describe('parseAuthoredSnapshot', () => {
  const shadowed = `
intentions:
  defaultAction: deny
  rules:
    - { source: gateway, destination: "*", action: deny }
    - { source: users, destination: orders, action: allow }
    - { source: gateway, destination: orders, action: allow }
    - { source: "*", destination: "*", action: allow }
    - { source: users, destination: orders, action: deny }
`;

  it('refuses an intention rule that never decides, naming it and the rule that decides instead', () => {
    expect(problems(shadowed, parseAuthoredSnapshot)).toEqual([
      'intentions.rules[2]: never decides: rule 0 (gateway -> *) matches every call it would',
      'intentions.rules[4]: never decides: rule 1 (users -> orders) matches every call it would',
    ]);
    // Alongside the other problems of the file, each at its place.
    expect(problems({ services: { catalog: { timeout: 'soon' } }, intentions: { rules: [{ source: '*', destination: 'orders', action: 'deny' }, { source: 'gateway', destination: 'orders', action: 'allow' }] } }, parseAuthoredSnapshot)).toEqual([
      'services.catalog.timeout: invalid duration "soon" (use e.g. "250ms", "3s", "1m", or a number of milliseconds)',
      'intentions.rules[1]: never decides: rule 0 (* -> orders) matches every call it would',
    ]);
  });

  it('refuses an endpoint listed twice (a sidecar keeps one per address and port, dropping the other unseen); pushed snapshots are discovery\'s', () => {
    const twice = {
      services: {
        catalog: {
          endpoints: [
            { address: '10.0.0.7', port: 9001, labels: { version: 'v1' } },
            { address: '10.0.0.8', port: 9001, labels: { version: 'v1' } },
            { address: '10.0.0.7', port: 9001, labels: { version: 'v2' } },
            { address: 'Cat.Local', port: 80 },
            { address: 'cat.local', port: 80 },
          ],
        },
      },
    };
    expect(problems(twice, parseAuthoredSnapshot)).toEqual([
      'services.catalog.endpoints[2]: 10.0.0.7 port 9001 is endpoints[0] again: one address and port is one endpoint (give this one its own port)',
      'services.catalog.endpoints[4]: cat.local port 80 is endpoints[3] again: one address and port is one endpoint (give this one its own port)',
    ]);
    expect(parseSnapshot(twice).services.catalog!.endpoints).toHaveLength(5);
  });

  it('takes what parseSnapshot takes otherwise, and parseSnapshot (pushed snapshots) takes such rules as they are', () => {
    const fine = 'intentions:\n  rules:\n    - { source: gateway, destination: "*", action: deny }\n    - { source: "*", destination: orders, action: allow }\n';
    expect(parseAuthoredSnapshot(fine)).toEqual(parseSnapshot(fine));
    expect(parseSnapshot(shadowed).intentions!.rules).toHaveLength(5);
  });
});

describe('parseAuthoredSnapshot with endpointsInFile (a static file read without --consul)', () => {
  const file = (routes: unknown, subsets: unknown = {}) => ({
    services: {
      catalog: { subsets, endpoints: [{ address: '127.0.0.1', port: 9001, labels: { version: 'v1' } }, { address: '127.0.0.1', port: 9002, labels: { version: 'v2' } }] },
      // No endpoints listed: every request to it fails alike, so its rules are not judged.
      empty: { endpoints: [] },
    },
    routes: { catalog: routes, empty: [{ split: { v9: 100 } }] },
  });
  const authored = (input: unknown) => parseAuthoredSnapshot(input, 'config', { endpointsInFile: true });

  it('refuses a split or mirror naming a subset nothing selects, in the control plane\'s words', () => {
    expect(problems(file([{ split: { v1: 90, V2: 10 }, mirror: { subset: 'v3' } }]), authored)).toEqual([
      'routes.catalog[0].split.V2: unknown subset "V2" of catalog: not declared in its policy and no instance has version=V2',
      'routes.catalog[0].mirror.subset: unknown subset "v3" of catalog: not declared in its policy and no instance has version=v3',
    ]);
  });

  it('takes subsets an endpoint carries as its version or the policy declares, and anything without endpointsInFile', () => {
    const fine = file([{ split: { v1: 50, v2: 25, canary: 25 } }], { canary: { track: 'canary' } });
    expect(authored(fine)).toEqual(parseSnapshot(fine));
    const typo = file([{ split: { V2: 100 } }]);
    expect(parseAuthoredSnapshot(typo)).toEqual(parseSnapshot(typo));
  });
});

/** A route rule's `rewrite`, `requestHeaders` and `responseHeaders`: taken as written, or refused naming the field. */
function rule(fields: Record<string, unknown>): unknown {
  return { routes: { catalog: [{ match: { pathPrefix: '/api/v2/' }, ...fields }] } };
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

  it('refuses a rewrite not ending in "/" after a match that does (segments joined: /api/items as /v2items)', () => {
    expect(problems({ routes: { catalog: [{ match: { pathPrefix: '/api/' }, rewrite: { pathPrefix: '/v2' } }] } })).toEqual([
      'routes.catalog[0].rewrite.pathPrefix: does not end with "/" where match.pathPrefix "/api/" does, so /api/x would go on as /v2x: end both with "/", or neither',
    ]);
    expect(() => parseSnapshot({ routes: { catalog: [{ match: { pathPrefix: '/api/' }, rewrite: { pathPrefix: '/' } }] } })).not.toThrow();
  });

  it.each(['http://catalog', 'catalog:0', 'catalog:99999', 'a b', '::1', ''])('refuses the host rewrite %j', (host) => {
    expect(problems(rule({ rewrite: { host } }))).toEqual([expect.stringMatching(/^routes\.catalog\[0\]\.rewrite\.host: must be a host name or IP address with an optional port/)]);
  });

  it('refuses an empty rewrite and unknown fields', () => {
    expect(problems(rule({ rewrite: {} }))).toEqual(['routes.catalog[0].rewrite: give pathPrefix, host or both']);
    expect(problems(rule({ requestHeaders: { append: { a: 'b' } } }))).toEqual([expect.stringContaining('routes.catalog[0].requestHeaders')]);
  });
});

describe('intention rules with HTTP permissions', () => {
  const rule = (fields: object) => ({ intentions: { rules: [{ source: 'gateway', destination: 'orders', ...fields }] } });

  it('takes permissions in place of action, each an action and a route match', () => {
    const parsed = parseAuthoredSnapshot(`
intentions:
  defaultAction: deny
  rules:
    - source: gateway
      destination: orders
      permissions:
        - { action: allow, http: { pathPrefix: /orders, method: [GET, POST] } }
        - { action: deny, http: { pathPrefix: /admin/, headers: { x-debug: { present: true } } } }
        - { action: allow, http: {} }
    - { source: admin, destination: orders, action: allow }
`);
    expect(parsed.intentions!.rules[0]).toEqual({
      source: 'gateway',
      destination: 'orders',
      permissions: [
        { action: 'allow', http: { pathPrefix: '/orders', method: ['GET', 'POST'] } },
        { action: 'deny', http: { pathPrefix: '/admin/', headers: { 'x-debug': { present: true } } } },
        { action: 'allow', http: {} },
      ],
    });
  });

  it('refuses a rule with both action and permissions, or neither, or none listed, naming the path', () => {
    expect(problems(rule({ action: 'allow', permissions: [{ action: 'deny', http: { path: '/x' } }] }))).toEqual([
      'intentions.rules[0].permissions: give action or permissions, not both: with permissions, the calls none matches get the default action',
    ]);
    expect(problems(rule({}))).toEqual(['intentions.rules[0]: give action (allow or deny every call) or permissions (allow or deny by path, method and headers)']);
    expect(problems(rule({ permissions: [] }))).toEqual(['intentions.rules[0].permissions: must list at least one permission (for none, give action in place of permissions)']);
  });

  it('checks a permission\'s match as a route\'s: unknown fields, paths no request has, unsafe regexes, each at its place', () => {
    const bad = problems(
      rule({
        permissions: [
          { action: 'allow', http: { pathPrefix: '/orders', methods: ['GET'] } },
          { action: 'allow', http: { path: '/a//b' } },
          { action: 'deny', http: { pathRegex: '^/(a+)+$' } },
          { action: 'deny', http: { headers: { 'x-team': { regex: '(x+x+)+y' } } } },
          { action: 'maybe', http: { path: '/x', pathPrefix: '/y' } },
          { action: 'allow' },
          { action: 'allow', http: { pathRegex: '(' } },
          { action: 'allow', http: { headers: { 'x-team': { regex: '[' } } } },
        ],
      }),
    );
    expect(bad[0]).toBe('intentions.rules[0].permissions[0].http.methods: write method (one method or a list), as in a route match');
    expect(bad[1]).toBe('intentions.rules[0].permissions[1].http.path: never matches: request paths are normalised before routing (unreserved escapes decoded, slashes merged, dot segments removed), so no request has this one: write "/a/b"');
    expect(bad[2]).toMatch(/^intentions\.rules\[0\]\.permissions\[2\]\.http\.pathRegex: may backtrack catastrophically/);
    expect(bad[3]).toMatch(/^intentions\.rules\[0\]\.permissions\[3\]\.http\.headers\.x-team\.regex: may backtrack catastrophically/);
    expect(bad.slice(4)).toEqual([
      "intentions.rules[0].permissions[4].action: Invalid enum value. Expected 'allow' | 'deny', received 'maybe'",
      'intentions.rules[0].permissions[4].http: give at most one of pathPrefix, path, pathRegex',
      'intentions.rules[0].permissions[5].http: Required',
      'intentions.rules[0].permissions[6].http.pathRegex: invalid regex: Invalid regular expression: /(/: Unterminated group',
      'intentions.rules[0].permissions[7].http.headers.x-team.regex: invalid regex: Invalid regular expression: /[/: Unterminated character class',
    ]);
  });

  it('refuses a permission after one that matches every request (it is never read)', () => {
    expect(problems(rule({ permissions: [{ action: 'deny', http: { pathPrefix: '/admin' } }, { action: 'allow', http: { pathPrefix: '/' } }, { action: 'deny', http: { path: '/x' } }] }))).toEqual([
      'intentions.rules[0].permissions[2]: never decides: permission 1 matches every request',
    ]);
  });

  it('refuses a later rule of the pair as never deciding: the permissions\' rule governs every call of it', () => {
    const l7 = { source: 'gateway', destination: 'orders', permissions: [{ action: 'allow', http: { method: 'GET' } }] };
    expect(problems({ intentions: { rules: [l7, { source: 'gateway', destination: 'orders', action: 'allow' }] } }, parseAuthoredSnapshot)).toEqual([
      'intentions.rules[1]: never decides: rule 0 (gateway -> orders) matches every call it would: its permissions decide them, the default action those none matches',
    ]);
    // Another pair's rule after it is read as ever.
    expect(parseAuthoredSnapshot({ intentions: { rules: [l7, { source: 'admin', destination: 'orders', action: 'allow' }] } }).intentions!.rules).toHaveLength(2);
  });
});

const failoverEndpoint = (port: number, version: string) => ({ address: '127.0.0.1', port, labels: { version } });

/** catalog (v1, v2) and catalog-dr (v1), with `failover` as catalog's. */
function failoverFile(failover: unknown, dr: Record<string, unknown> = {}) {
  return {
    services: {
      catalog: { failover, endpoints: [failoverEndpoint(8001, 'v1'), failoverEndpoint(8002, 'v2')] },
      'catalog-dr': { endpoints: [failoverEndpoint(9001, 'v1')], ...dr },
    },
  };
}

const withEndpoints = (input: unknown) => parseAuthoredSnapshot(input, 'config', { endpointsInFile: true });

describe('services.<name>.failover', () => {
  it('takes subset and service targets, in order, as written', () => {
    const lists = { v2: [{ subset: 'v1' }], '*': [{ service: 'catalog-dr' }, { service: 'catalog-dr', subset: 'v1' }] };
    expect(withEndpoints(failoverFile(lists)).services.catalog!.failover).toEqual(lists);
  });

  it('refuses an empty list, a target with neither field, unknown fields, more than 8 targets and a bad key, naming each path', () => {
    const nine = Array.from({ length: 9 }, (_, i) => ({ service: 'catalog-dr', subset: `s${i}` }));
    expect(problems(failoverFile({ v2: [], v1: [{}], 'v 3': [{ subset: 'v1' }], canary: nine, '**': [{ subset: 'v1', weight: 1 }] }))).toEqual([
      'services.catalog.failover.v2: list at least one target (leave the subset out for none)',
      'services.catalog.failover.v1[0]: give subset, service or both (subset alone is a subset of this service)',
      'services.catalog.failover.v 3: must be a subset name (letters, digits, "-", "_" or "."), or "*" for every subset without a list of its own',
      'services.catalog.failover.canary: lists at most 8 targets',
      'services.catalog.failover.**: must be a subset name (letters, digits, "-", "_" or "."), or "*" for every subset without a list of its own',
      'services.catalog.failover.**[0]: unknown field "weight"',
    ]);
  });

  it('refuses a subset failing over to itself and a target listed twice', () => {
    expect(problems(failoverFile({ v2: [{ subset: 'v1' }, { subset: 'v2' }, { subset: 'v1' }] }))).toEqual([
      'services.catalog.failover.v2[1].subset: is the subset this list is for: a subset cannot fail over to itself',
      'services.catalog.failover.v2[2]: is the same target as [0]',
    ]);
  });

  it('in a written snapshot, refuses a target service it does not list, or of another protocol, and this service named as itself or twice', () => {
    expect(problems(failoverFile({ v2: [{ service: 'orders' }, { service: 'catalog', subset: 'v2' }, { subset: 'v1' }, { service: 'catalog', subset: 'v1' }], '*': [{ service: 'catalog-dr' }] }, { protocol: 'grpc' }), parseAuthoredSnapshot)).toEqual([
      'services.catalog.failover.v2[0].service: names orders, which is not in services: list it there (with its endpoints) or leave the target out',
      'services.catalog.failover.v2[1]: is catalog/v2, the subset this list is for: a subset cannot fail over to itself',
      'services.catalog.failover.v2[3]: is the same target as [2]',
      'services.catalog.failover.*[0].service: catalog-dr speaks grpc, catalog http: a request fails over only to a service of its own protocol',
    ]);
    // A pushed snapshot may lose a target service with its last instance: its sidecars skip the target.
    expect(parseSnapshot(failoverFile({ v2: [{ service: 'orders' }] })).services.catalog!.failover).toEqual({ v2: [{ service: 'orders' }] });
  });

  it('with the endpoints in the file, refuses a list or target subset nothing selects, of this service or the target', () => {
    expect(problems(failoverFile({ v3: [{ subset: 'v1' }], v2: [{ subset: 'V1' }, { service: 'catalog-dr', subset: 'v2' }] }), withEndpoints)).toEqual([
      'services.catalog.failover.v3: unknown subset "v3" of catalog: not declared in its policy and no instance has version=v3',
      'services.catalog.failover.v2[0].subset: unknown subset "V1" of catalog: not declared in its policy and no instance has version=V1',
      'services.catalog.failover.v2[1].subset: unknown subset "v2" of catalog-dr: not declared in its policy and no instance has version=v2',
    ]);
  });
});
