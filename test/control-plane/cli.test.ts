/** The admin CLI commands against a real control plane: output, exit codes and error messages. */
import { execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type RequestListener, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSnapshot } from '../../common/config/parse.js';
import { intentions, type IntentionsInput, type Snapshot } from '../../common/config/schema.js';
import { compileIntentions } from '../../sidecar/authz/intentions.js';
import { apiError } from '../support/api-error.js';
import { Processes, skeinBin, tempDir, waitUntil, writeTempConfig } from '../support/index.js';
import { announceInstance, createToken, startControlPlane, testSource, type ControlPlaneProcess } from './harness.js';

const procs = new Processes();
let cp: ControlPlaneProcess;

beforeAll(async () => {
  // No resync hold: its refusals of unknown subsets would be 503s to try again (resync-refusals.test.ts).
  cp = await startControlPlane(procs, { args: ['--resync-hold', '0s'] });
});
afterAll(() => procs.killAll());

function skein(args: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [skeinBin, ...args],
      { env: { ...process.env, SKEIN_ADMIN_URL: cp.adminUrl, SKEIN_ADMIN_TOKEN: cp.adminToken, ...env } },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** Runs `use` against a scripted HTTP server on 127.0.0.1, for answers a real control plane does not give on cue; closes it after. */
async function withServer(handler: RequestListener, use: (url: string) => Promise<void>): Promise<void> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await use(`http://127.0.0.1:${(server.address() as { port: number }).port}`);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

/** Runs skein with nobody reading its stdout any more, as `skein … | head -1` leaves it once head has its line. */
function skeinIntoClosedPipe(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [skeinBin, ...args], {
    env: { ...process.env, SKEIN_ADMIN_URL: cp.adminUrl, SKEIN_ADMIN_TOKEN: cp.adminToken },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stderr })));
}

const MESH = `
services:
  catalog:
    timeout: 2s
    subsets:
      v1: { version: v1 }
      v2: { version: v2 }
routes:
  catalog:
    - name: canary
      match: { headers: { x-canary: "true" } }
      split: { v2: 100 }
    - match: { pathPrefix: / }
      split: { v1: 100 }
      retries: { attempts: 1, on: [connect-failure, 503, 429] }
intentions:
  defaultAction: allow
  rules:
    - { source: gateway, destination: catalog, action: allow }
`;

describe('skein admin commands', () => {
  it('token create prints the token alone', async () => {
    const res = await skein(['token', 'create', 'orders']);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^skt_[A-Za-z0-9_-]+\n$/);
    const json = await skein(['token', 'create', 'orders', '--ttl', '1h', '-o', 'json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ service: 'orders' });
  });

  it('token revoke succeeds, and again on a revoked token', async () => {
    const token = (await skein(['token', 'create', 'orders'])).stdout.trim();
    for (let i = 0; i < 2; i++) {
      const res = await skein(['token', 'revoke', token]);
      expect({ code: res.code, stderr: res.stderr }).toEqual({ code: 0, stderr: 'token revoked\n' });
    }
  });

  it('apply -f writes policies, routes and intentions; get reads them back', async () => {
    const file = join(tempDir(), 'mesh.yaml');
    writeFileSync(file, MESH);
    const res = await skein(['apply', '-f', file]);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^KIND\s+NAME\s+SNAPSHOT\npolicy\s+catalog\s+\d+\nroutes\s+catalog\s+\d+\nintentions\s+-\s+\d+\n$/);
    const routes = JSON.parse((await skein(['get', 'routes', 'catalog', '-o', 'json'])).stdout);
    expect(routes[0]).toEqual({ name: 'canary', match: { headers: { 'x-canary': 'true' } }, split: { v2: 100 } });
    const table = (await skein(['get', 'routes'])).stdout;
    expect(table).toMatch(/catalog\s+canary\s+x-canary:true\s+v2=100/);
    const intentions = (await skein(['get', 'intentions'])).stdout;
    expect(intentions).toMatch(/default action: allow\nSOURCE\s+DESTINATION\s+ACTION\ngateway\s+catalog\s+allow/);
    const services = (await skein(['get', 'services'])).stdout;
    expect(services).toMatch(/^NAME\s+PROTOCOL\s+INSTANCES\s+HEALTHY\s+SUBSETS\ncatalog\s+http\s+0\s+0\s+v1\(0\/0\) v2\(0\/0\)\n$/);
  });

  it('apply -f validates the whole file first and names the field', async () => {
    const file = join(tempDir(), 'bad.yaml');
    writeFileSync(file, 'services:\n  catalog:\n    timeout: soon\n    endpoints: []\n');
    const res = await skein(['apply', '-f', file]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/services\.catalog\.timeout: invalid duration "soon"/);
    expect(res.stderr).toMatch(/services\.catalog: unknown field "endpoints"/);
  });

  it('apply -f checks the whole file against the mesh first: a split to an unknown subset writes nothing', async () => {
    const file = join(tempDir(), 'half.yaml');
    writeFileSync(file, 'services:\n  inventory:\n    timeout: 7s\nroutes:\n  inventory:\n    - split: { v9: 100 }\nintentions:\n  defaultAction: deny\n');
    // The stored intentions, or the 404 of none (this test must not depend on what others stored).
    const intentions = () => cp.api.get('/api/v1/intentions').then((r) => r.body, (err: { status: number }) => err.status);
    const intentionsBefore = await intentions();
    const res = await skein(['apply', '-f', file]);
    expect(res.code).toBe(1);
    expect(res.stderr).toBe(`skein: ${file} does not fit the mesh; nothing was written:\n  routes.inventory[0].split.v9: unknown subset "v9" of inventory: not declared in its policy and no instance has version=v9\n`);
    expect(await cp.api.get('/api/v1/services/inventory/policy').catch((err: { status: number }) => err.status)).toBe(404);
    expect(await intentions()).toEqual(intentionsBefore);
    // Subsets the file's own policy declares count: the same file with v9 declared goes in whole.
    writeFileSync(file, 'services:\n  inventory:\n    timeout: 7s\n    subsets: { v1: { version: v1 }, v9: { version: v9 } }\nroutes:\n  inventory:\n    - split: { v1: 90, v9: 10 }\n');
    const ok = await skein(['apply', '-f', file]);
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toMatch(/^KIND\s+NAME\s+SNAPSHOT\npolicy\s+inventory\s+\d+\nroutes\s+inventory\s+\d+\n$/);
  });

  it('apply -f judges the file by the state it leaves behind and writes all of it at once, in one snapshot', async () => {
    // A sidecar of another service, recording every snapshot it is pushed.
    const received: Snapshot[] = [];
    const source = testSource(cp, { service: 'gateway', instanceId: 'gateway-apply', token: await createToken(cp, 'gateway'), inboundPort: 31_888 });
    void source.start((raw) => {
      received.push(parseSnapshot(raw));
    });
    try {
      const file = join(tempDir(), 'reviews.yaml');
      writeFileSync(file, 'services:\n  reviews:\n    timeout: 2s\n    subsets: { v1: { version: v1 }, v2: { version: v2 } }\nroutes:\n  reviews:\n    - split: { v1: 50, v2: 50 }\n');
      expect((await skein(['apply', '-f', file])).code).toBe(0);

      // The policy drops v1 while the same file's routes stop using it. Checked document by
      // document (the policy against the routes still in force) this was refused.
      writeFileSync(file, 'services:\n  reviews:\n    timeout: 3s\n    subsets: { v2: { version: v2 }, v3: { version: v3 } }\nroutes:\n  reviews:\n    - split: { v2: 90, v3: 10 }\n');
      expect((await cp.api.post('/api/v1/apply/check', { services: { reviews: { subsets: { v2: {}, v3: {} } } }, routes: { reviews: [{ split: { v3: 100 } }] } })).body).toEqual({ ok: true });
      const res = await skein(['apply', '-f', file]);
      expect(res.stderr).toBe('');
      expect(res.code).toBe(0);
      const rows = /^KIND\s+NAME\s+SNAPSHOT\npolicy\s+reviews\s+(\d+)\nroutes\s+reviews\s+(\d+)\n$/.exec(res.stdout);
      expect(rows, res.stdout).not.toBeNull();
      expect(rows![1]).toBe(rows![2]);
      expect((await cp.api.get('/api/v1/services/reviews/policy')).body).toEqual({ timeout: '3s', subsets: { v2: { version: 'v2' }, v3: { version: 'v3' } } });
      expect((await cp.api.get('/api/v1/routes/reviews')).body).toEqual([{ split: { v2: 90, v3: 10 } }]);

      // Sidecars got the file as one snapshot: never the new policy with the old routes, or the reverse.
      await waitUntil(() => received.some((snap) => snap.version === rows![1]), { what: `snapshot ${rows![1]} at the sidecar` });
      const states = received.filter((snap) => snap.services.reviews).map((snap) => `${snap.services.reviews!.timeout}ms ${JSON.stringify(snap.routes.reviews?.[0]?.split)}`);
      expect(states.at(-1)).toBe('3000ms {"v2":90,"v3":10}');
      expect(states.filter((state) => state !== '2000ms {"v1":50,"v2":50}' && state !== '3000ms {"v2":90,"v3":10}')).toEqual([]);
    } finally {
      await source.close();
    }
  });

  it('apply -f refuses a file whose final state is invalid, whole, naming each problem by its place in the file', async () => {
    const file = join(tempDir(), 'invalid.yaml');
    writeFileSync(
      file,
      'services:\n  ratings:\n    subsets: { v1: { version: v1 }, v2: { version: v2 } }\n  details:\n    subsets: { v1: { version: v1 } }\n' +
        'routes:\n  ratings:\n    - split: { v1: 100 }\n  details:\n    - split: { v1: 100 }\n',
    );
    expect((await skein(['apply', '-f', file])).code).toBe(0);
    const paths = ['/api/v1/services/ratings/policy', '/api/v1/routes/ratings', '/api/v1/services/details/policy', '/api/v1/routes/details', '/api/v1/intentions'];
    const before = await Promise.all(paths.map(async (path) => (await cp.api.get(path)).body));

    // ratings' policy drops v2 while its new routes split to v2 and to v9, which nobody
    // declares; details' policy alone drops v1, which its stored routes still use.
    writeFileSync(
      file,
      'services:\n  ratings:\n    subsets: { v1: { version: v1 } }\n  details:\n    subsets: { v3: { version: v3 } }\n' +
        'routes:\n  ratings:\n    - split: { v2: 50, v9: 50 }\nintentions:\n  defaultAction: deny\n',
    );
    const res = await skein(['apply', '-f', file]);
    expect(res.code).toBe(1);
    expect(res.stdout).toBe('');
    expect(res.stderr).toBe(
      `skein: ${file} does not fit the mesh; nothing was written:\n` +
        '  services.details.routes[0].split.v1: unknown subset "v1" of details: not declared in its policy and no instance has version=v1\n' +
        '  routes.ratings[0].split.v2: unknown subset "v2" of ratings: not declared in its policy and no instance has version=v2\n' +
        '  routes.ratings[0].split.v9: unknown subset "v9" of ratings: not declared in its policy and no instance has version=v9\n',
    );
    expect(await Promise.all(paths.map(async (path) => (await cp.api.get(path)).body))).toEqual(before);
  });

  it('split sets the canary weights and reports API errors readably', async () => {
    const ok = await skein(['split', 'catalog', 'v1=80', 'v2=20']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^catalog: v1=80 v2=20 \(snapshot \d+\)\n$/);
    const routes = JSON.parse((await skein(['get', 'routes', 'catalog', '-o', 'json'])).stdout);
    expect(routes[1].split).toEqual({ v1: 80, v2: 20 });
    const sum = await skein(['split', 'catalog', 'v1=80', 'v2=30']);
    expect(sum.code).toBe(1);
    expect(sum.stderr).toMatch(/422 invalid: .*weights must sum to 100/);
    const unknown = await skein(['split', 'catalog', 'v1=50', 'v7=50']);
    expect(unknown.stderr).toMatch(/unknown subset "v7" of catalog/);
  });

  it('exits 2 on usage errors', async () => {
    expect((await skein(['split', 'catalog', 'v1'])).code).toBe(2);
    expect((await skein(['split', 'catalog', 'v1=50', 'v1=50'])).code).toBe(2);
    expect((await skein(['get', 'things'])).code).toBe(2);
    expect((await skein(['get', 'services', '-o', 'xml'])).code).toBe(2);
    expect((await skein(['intention', 'allow', 'gateway'])).code).toBe(2);
    expect((await skein(['apply'])).code).toBe(2);
    expect((await skein(['split', 'catalog'])).code).toBe(2);
    expect((await skein(['explain', 'catalog', 'GET'])).code).toBe(2);
    const header = await skein(['explain', 'catalog', 'GET', '/', '-H', 'no-colon']);
    expect(header.code).toBe(2);
    expect(header.stderr).toMatch(/expected NAME:VALUE, got no-colon/);
    expect((await skein(['token', 'create'])).code).toBe(2);
    const defaultAction = await skein(['intention', 'default', 'maybe']);
    expect(defaultAction.code).toBe(2);
    expect(defaultAction.stderr).toMatch(/usage: skein intention default allow\|deny/);
    // A destination after `default allow|deny` is a mistake (a rule meant?), not a mesh-wide switch.
    const intentions = () => cp.api.get('/api/v1/intentions').then((r) => r.body, (err: { status: number }) => err.status);
    const before = await intentions();
    const extra = await skein(['intention', 'default', 'deny', 'orders']);
    expect({ code: extra.code, stdout: extra.stdout }).toEqual({ code: 2, stdout: '' });
    expect(extra.stderr).toBe('skein: usage: skein intention default allow|deny\n');
    expect(await intentions()).toEqual(before);
  });

  it('rejects bad flag values itself: exit 2 and one line naming the flag', async () => {
    const cases: [string[], RegExp, Record<string, undefined | string>?][] = [
      [['token', 'create', 'orders', '--ttl', 'bogus'], /^error: option '--ttl <duration>' argument 'bogus' is invalid\. not a duration: bogus/],
      [['token', 'create', 'orders', '--ttl', '9000h'], /^skein: --ttl: must be between 1s and 365 days$/],
      [['token', 'create', 'Orders'], /^error: command-argument value 'Orders' is invalid for argument 'service'\. must be a DNS label/],
      [['tap', 'Bad_Name'], /^error: command-argument value 'Bad_Name' is invalid for argument 'service'\. must be a DNS label/],
      [['get', 'intentions', 'Bad_Name'], /^error: command-argument value 'Bad_Name' is invalid for argument 'name'\. must be a DNS label/],
      [['tap', 'catalog', '--status', '6xx'], /^error: option '--status <status>' argument '6xx' is invalid\. not a class such as 5xx or a status such as 503: 6xx/],
      [['tap', 'catalog', '--peer', 'Web!'], /^error: option '--peer <service>' argument 'Web!' is invalid\. must be a DNS label/],
      // Filters no request could match, and the same checks of explain, refused before connecting (nothing listens on port 1).
      [['tap', 'catalog', '--method', 'G T'], /^error: option '--method <method>' argument 'G T' is invalid\. must be an HTTP method name \(a token/, { SKEIN_ADMIN_URL: 'http://127.0.0.1:1' }],
      [['tap', 'catalog', '--path', 'noslash'], /^error: option '--path <prefix>' argument 'noslash' is invalid\. must start with "\/"$/, { SKEIN_ADMIN_URL: 'http://127.0.0.1:1' }],
      [['explain', 'catalog', 'G T', '/'], /^error: command-argument value 'G T' is invalid for argument 'method'\. must be an HTTP method name \(a token/, { SKEIN_ADMIN_URL: 'http://127.0.0.1:1' }],
      [['explain', 'catalog', 'GET', 'noslash'], /^error: command-argument value 'noslash' is invalid for argument 'path'\. must start with "\/"$/, { SKEIN_ADMIN_URL: 'http://127.0.0.1:1' }],
      [['canary', 'catalog', '--to', 'v2', '--interval', 'soon'], /^error: option '--interval <duration>' argument 'soon' is invalid/],
      [['canary', 'catalog', '--to', 'v2', '--interval', '100ms'], /^skein: --interval: must be at least 500ms$/],
      [['canary', 'catalog', '--to', 'v2', '--max-p99', 'fast'], /^error: option '--max-p99 <duration>' argument 'fast' is invalid/],
      [['canary', 'catalog', '--to', 'v2', '--max-p99', '11s'], /^skein: --max-p99: must be at most 10s \(the last latency bucket: a p99 past it is not measured\), not 11s; 0 turns the latency check off$/],
      [['canary', 'catalog', '--to', 'v2', '--steps', '50,25,100'], /^skein: --steps: weights must increase step by step$/],
      [['canary', 'catalog', '--to', 'v2', '--steps', '10,50'], /^skein: --steps: the last step must be 100$/],
      [['canary', 'catalog', '--to', 'v2', '--min-success-rate', '2'], /^skein: --min-success-rate: Number must be less than or equal to 1$/],
      [['canary', 'catalog', '--to', 'v2', '--min-requests', '1.5'], /^skein: --min-requests: Expected integer/],
      [['control-plane', '--store', 'consul'], /^skein: --store consul needs --consul URL \(or CONSUL_HTTP_ADDR\)$/, { CONSUL_HTTP_ADDR: undefined }],
      [['get', 'services', '--control-plane', 'notaurl'], /^error: option '--control-plane <url>' argument 'notaurl' is invalid\. expected an admin API URL such as http:\/\/127\.0\.0\.1:15080 \(or HOST:PORT\)/],
      [['get', 'services', '--control-plane', 'ftp://127.0.0.1:21'], /^error: option '--control-plane <url>' argument 'ftp:\/\/127\.0\.0\.1:21' is invalid/],
      [['get', 'services'], /^error: option '--control-plane <url>' value 'nowhere' from env 'SKEIN_ADMIN_URL' is invalid/, { SKEIN_ADMIN_URL: 'nowhere' }],
      // Checked as the control plane checks a rule, but named as typed, not as rules[N] of a 422.
      [['intention', 'allow', 'BAD!', 'orders'], /^skein: SOURCE "BAD!" is not a service name: it must be a DNS label: .* \(or \* for any service\)$/],
      [['intention', 'deny', '*', 'Orders'], /^skein: DESTINATION "Orders" is not a service name: it must be a DNS label/],
      [['token', 'revoke', ''], /^error: command-argument value '' is invalid for argument 'token'\. a token is never blank/],
      // Durations past what Node's timers hold (about 596h) would fire after 1 ms; 0s would fail every request.
      [['get', 'services', '--request-timeout', '999h'], /^error: option '--request-timeout <duration>' argument '999h' is invalid\. 999h is out of range: must be between 1ms and 24h$/],
      [['get', 'services', '--request-timeout', '0s'], /^error: option '--request-timeout <duration>' argument '0s' is invalid\. 0s is out of range: must be between 1ms and 24h$/],
      [['get', 'services'], /^error: option '--request-timeout <duration>' value '999h' from env 'SKEIN_ADMIN_TIMEOUT' is invalid/, { SKEIN_ADMIN_TIMEOUT: '999h' }],
      // Nothing listens on port 1: a rotation the bad flag let through would fail to connect (exit 1), not exit 2.
      [['ca', 'rotate', '--wait', '--timeout', 'abc'], /^error: option '--timeout <duration>' argument 'abc' is invalid\. not a duration: abc/, { SKEIN_ADMIN_URL: 'http://127.0.0.1:1' }],
      [['ca', 'rotate', '--wait', '--timeout', '300'], /^error: option '--timeout <duration>' argument '300' is invalid\. not a duration: 300/, { SKEIN_ADMIN_URL: 'http://127.0.0.1:1' }],
      [['ca', 'rotate', '--wait', '--timeout', '999h'], /^error: option '--timeout <duration>' argument '999h' is invalid\. 999h is out of range: must be between 1s and 24h$/, { SKEIN_ADMIN_URL: 'http://127.0.0.1:1' }],
      [['control-plane', '--resync-hold', '999h'], /^error: option '--resync-hold <duration>' argument '999h' is invalid\. 999h is out of range: must be between 0s and 1h$/],
      [['control-plane', '--registry-grace', '999h'], /^error: option '--registry-grace <duration>' argument '999h' is invalid\. 999h is out of range: must be between 0s and 24h$/],
      [['control-plane', '--coalesce', '5s'], /^error: option '--coalesce <duration>' argument '5s' is invalid\. 5s is out of range: must be between 0s and 1s$/],
      // 0s would read the whole catalog in a loop.
      [['control-plane', '--consul-sweep', '0s'], /^error: option '--consul-sweep <duration>' argument '0s' is invalid\. 0s is out of range: must be between 1s and 24h$/],
    ];
    for (const [args, message, env] of cases) {
      const res = await skein(args, env);
      expect(res.code, args.join(' ')).toBe(2);
      expect(res.stderr.split('\n')[0], args.join(' ')).toMatch(message);
      expect(res.stderr, args.join(' ')).not.toMatch(/422|skein: skein:/);
    }
    // Nothing was started: the bad canary flags never reached the control plane.
    expect((await skein(['canary', 'catalog', '--status'])).stderr).toMatch(/404/);
  });

  it('says in one line, prefixed once, why a file or the store cannot be read', async () => {
    const dir = tempDir();
    const applyDir = await skein(['apply', '-f', dir]);
    expect(applyDir).toEqual({ code: 1, stdout: '', stderr: `skein: -f ${dir} is a directory, not a file\n` });
    const missing = join(dir, 'missing.yaml');
    expect(await skein(['inject', '-f', missing])).toEqual({ code: 1, stdout: '', stderr: `skein: -f ${missing} does not exist\n` });
    // The store's own errors already start with "skein: ".
    writeFileSync(join(dir, 'store.json'), '{"format":2}');
    const store = await skein(['control-plane', '--data-dir', dir, '--http-port', '0', '--grpc-port', '0']);
    expect(store.code).toBe(1);
    expect(store.stderr).toMatch(new RegExp(`(^|\\n)skein: ${join(dir, 'store.json')} is not a Skein store\\n$`));
    expect(store.stderr).not.toMatch(/skein: skein:/);
  });

  it('takes --control-plane HOST:PORT as http://HOST:PORT', async () => {
    const res = await skein(['get', 'proxies', '--control-plane', `127.0.0.1:${cp.httpPort}`], { SKEIN_ADMIN_URL: undefined });
    expect(res.stderr).toBe('');
    expect(res.stdout).toMatch(/^snapshot version \d+\n/);
  });

  it('prints JSON with --output json from every command that prints data', async () => {
    const file = join(tempDir(), 'mesh.yaml');
    writeFileSync(file, MESH);
    const applied = JSON.parse((await skein(['apply', '-f', file, '--output', 'json'])).stdout);
    expect(applied.map((r: { kind: string }) => r.kind)).toEqual(['policy', 'routes', 'intentions']);
    expect(applied[0]).toEqual({ kind: 'policy', name: 'catalog', snapshotVersion: expect.stringMatching(/^\d+$/) });
    const split = JSON.parse((await skein(['split', 'catalog', 'v1=80', 'v2=20', '--output', 'json'])).stdout);
    expect(split).toMatchObject({ service: 'catalog', split: { v1: 80, v2: 20 }, snapshotVersion: expect.stringMatching(/^\d+$/) });
    expect(split.routes.at(-1).split).toEqual({ v1: 80, v2: 20 });
    const intention = JSON.parse((await skein(['intention', 'deny', 'users', 'catalog', '--output', 'json'])).stdout);
    expect(intention.rules[0]).toEqual({ source: 'users', destination: 'catalog', action: 'deny' });
    const services = JSON.parse((await skein(['get', 'services', '--output', 'json'])).stdout);
    expect(services.find((s: { name: string }) => s.name === 'catalog')).toMatchObject({ name: 'catalog', instances: [] });
    const one = await skein(['get', 'services', 'catalog']);
    expect(one.stdout).toMatch(/^catalog \(http\); subsets \(healthy\/total\): v1\(0\/0\) v2\(0\/0\)\nINSTANCE\s+ADDRESS\s+VERSION\s+HEALTH\n$/);
    const proxies = JSON.parse((await skein(['get', 'proxies', '--output', 'json'])).stdout);
    expect(proxies).toEqual({ snapshotVersion: expect.stringMatching(/^\d+$/), proxies: [] });
    const missing = await skein(['get', 'routes', 'nobody']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/404 not-found: unknown service nobody: no policy, routes or instances/);
  });

  it('says a service the mesh does not know is unknown, from get proxies, stat and tap alike', async () => {
    for (const args of [['get', 'services', 'nobody'], ['get', 'proxies', 'nobody'], ['stat', 'nobody'], ['tap', 'nobody']]) {
      const res = await skein(args);
      expect(res.code, args.join(' ')).toBe(1);
      expect(res.stderr, args.join(' ')).toMatch(/404 not-found: unknown service nobody: no policy, routes or instances/);
    }
    // A known service with nothing to show is still answered (a policy, no sidecar).
    await cp.api.put('/api/v1/services/lonely/policy', { timeout: '2s' });
    const known = await skein(['get', 'proxies', 'lonely']);
    expect(known.code).toBe(0);
    expect(known.stdout).toMatch(/^snapshot version \d+\nSERVICE\s+INSTANCE/);
    // Its routes: none stored, which is the implicit catch-all, not an error.
    const routes = await skein(['get', 'routes', 'lonely']);
    expect(routes.code, routes.stderr).toBe(0);
    expect(routes.stdout).toBe('lonely: no route rules; every request goes to any of its endpoints (the implicit catch-all rule)\n');
    expect(JSON.parse((await skein(['get', 'routes', 'lonely', '-o', 'json'])).stdout)).toEqual([]);
  });

  it('says what is wrong without a token and when the control plane is unreachable', async () => {
    const noToken = await skein(['split', 'catalog', 'v1=100'], { SKEIN_ADMIN_TOKEN: '' });
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toMatch(/401 unauthorized: .*SKEIN_ADMIN_TOKEN is not set/);
    const down = await skein(['get', 'services', '--control-plane', 'http://127.0.0.1:1']);
    expect(down.code).toBe(1);
    // Port 1 is one fetch refuses outright ("bad port"); the CLI really tries it.
    expect(down.stderr).toBe('skein: cannot reach the control plane at http://127.0.0.1:1: ECONNREFUSED (set --control-plane or SKEIN_ADMIN_URL)\n');
  });

  it('reads SKEIN_ADMIN_TOKEN as the control plane does: trimmed (the admin-token file ends in a newline), blank as unset', async () => {
    const newline = await skein(['token', 'create', 'orders'], { SKEIN_ADMIN_TOKEN: `${cp.adminToken}\n` });
    expect(newline.stderr).toBe('');
    expect(newline.code).toBe(0);
    const blank = await skein(['token', 'create', 'orders'], { SKEIN_ADMIN_TOKEN: ' \n' });
    expect(blank).toEqual({ code: 1, stdout: '', stderr: expect.stringMatching(/^skein: 401 unauthorized: missing Authorization: Bearer <admin token> \(the admin-token file in the control plane's data dir\) \(SKEIN_ADMIN_TOKEN is not set, or blank\)\n$/) });
    // Two lines are no token: said as the variable's mistake, before any request.
    const twoLines = await skein(['token', 'create', 'orders'], { SKEIN_ADMIN_TOKEN: `${cp.adminToken}\nmore`, SKEIN_ADMIN_URL: 'http://127.0.0.1:1' });
    expect(twoLines).toEqual({ code: 2, stdout: '', stderr: 'skein: SKEIN_ADMIN_TOKEN must hold the admin token alone: one word of printable ASCII characters, as in <data-dir>/admin-token\n' });
  });

  it('gives up on a control plane that accepts the connection but never answers', async () => {
    await withServer(() => undefined, async (url) => {
      const flag = await skein(['get', 'services', '--control-plane', url, '--request-timeout', '300ms']);
      expect(flag.code).toBe(1);
      expect(flag.stderr).toBe(`skein: the control plane at ${url} did not answer within 300ms (set --request-timeout or SKEIN_ADMIN_TIMEOUT to wait longer)\n`);
      const env = await skein(['ca', 'status'], { SKEIN_ADMIN_URL: url, SKEIN_ADMIN_TIMEOUT: '200ms' });
      expect(env.code).toBe(1);
      expect(env.stderr).toMatch(/did not answer within 200ms/);
      expect((await skein(['get', 'services', '--request-timeout', 'soon'])).code).toBe(2);
    });
  });

  it('ca rotate --wait gives up after --timeout, a duration, naming what the rotation waits for', async () => {
    // A control plane whose rotation never finishes: one sidecar never catches up.
    const view = { trustDomain: 'skein.local', roots: [], rotation: { phase: 'new-root-trusted', rotating: true, waitingFor: ['orders/orders-1'], startedAt: null, finishedAt: null } };
    await withServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(view)), async (url) => {
      const started = Date.now();
      const res = await skein(['ca', 'rotate', '--wait', '--timeout', '1s', '--control-plane', url]);
      expect(res).toEqual({ code: 1, stdout: '', stderr: 'skein: rotation still in phase new-root-trusted after 1s; waiting for: orders/orders-1\n' });
      expect(Date.now() - started).toBeLessThan(10_000);
    });
  }, 20_000);

  it('get services counts each subset as healthy/total, as the HEALTHY column counts, critical instances left out', async () => {
    const instance = (id: string, version: string, health: string) => ({ id, address: '10.0.0.1', port: 9000, version, labels: { version }, health });
    const view = {
      name: 'catalog',
      protocol: 'http',
      instances: [instance('c1', 'v1', 'healthy'), instance('c2', 'v1', 'critical'), instance('c3', 'v2', 'healthy'), instance('c4', 'v2', 'disconnected')],
      subsets: [
        { name: 'v1', labels: { version: 'v1' }, declared: true, instances: 2 },
        { name: 'v2', labels: { version: 'v2' }, declared: false, instances: 2 },
        { name: 'v3', labels: { version: 'v3' }, declared: true, instances: 0 },
      ],
      hasPolicy: true,
      hasRoutes: false,
    };
    await withServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(req.url === '/api/v1/services' ? [view] : view));
    }, async (url) => {
      const all = await skein(['get', 'services', '--control-plane', url]);
      expect(all.stdout).toBe('NAME     PROTOCOL  INSTANCES  HEALTHY  SUBSETS\ncatalog  http      4          2        v1(1/2) v2(1/2) v3(0/0)\n');
      const one = await skein(['get', 'services', 'catalog', '--control-plane', url]);
      expect(one.stdout).toMatch(/^catalog \(http\); subsets \(healthy\/total\): v1\(1\/2\) v2\(1\/2\) v3\(0\/0\)\nINSTANCE/);
    });
  });

  it('says so when --control-plane answers, but is not a Skein control plane', async () => {
    await withServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"status":"ok","items":{}}');
    }, async (url) => {
      const services = await skein(['get', 'services', '--control-plane', url]);
      expect(services.code).toBe(1);
      expect(services.stderr).toBe(
        `skein: ${url}/api/v1/services answered something other than a list of services: is ${url} a Skein control plane's admin API? (set --control-plane or SKEIN_ADMIN_URL)\n`,
      );
      for (const kind of ['routes', 'proxies', 'intentions']) {
        const res = await skein(['get', kind, '--control-plane', url]);
        expect(res.code, kind).toBe(1);
        expect(res.stderr, kind).toMatch(/answered something other than .*: is .* a Skein control plane's admin API\?/);
      }
    });
  });

  it("says so when --control-plane is a sidecar's admin port, whose 404 is no answer about the mesh", async () => {
    const sidecar = await procs.sidecar({ service: 'backend', appPort: 9, config: writeTempConfig({ version: '1', services: {} }), waitFor: '/live' });
    const refused = (path: string) =>
      `skein: ${sidecar.adminUrl} is a Skein sidecar's admin port, not a Skein control plane's admin API, so its 404 answer to ${path} says nothing about the mesh: ` +
      "point --control-plane or SKEIN_ADMIN_URL at the control plane's --http-port (default http://127.0.0.1:15080)\n";
    for (const [args, path] of [
      [['split', 'backend', 'v1=90', 'v2=10'], '/api/v1/routes/backend/split'],
      [['get', 'services'], '/api/v1/services'],
      [['tap', 'backend'], '/api/v1/services/backend'],
    ] as const) {
      const res = await skein([...args, '--control-plane', sidecar.adminUrl]);
      expect({ code: res.code, stderr: res.stderr, stdout: res.stdout }, args.join(' ')).toEqual({ code: 1, stderr: refused(path), stdout: '' });
    }
    // Asked directly (curl, an older CLI), the sidecar says where the admin API is.
    const direct = (await (await fetch(`${sidecar.adminUrl}/api/v1/services`)).json()) as { error: { message: string } };
    expect(direct.error.message).toMatch(/this is a Skein sidecar's admin port, and \/api\/… is the control plane's admin API \(its --http-port, default 127\.0\.0\.1:15080\)$/);
    sidecar.kill('SIGKILL');
  });

  it('understands the routes and intentions of a control plane of another version: fields it does not know, values this version refuses', async () => {
    let intentions: unknown = { defaultAction: 'deny', rules: [{ source: 'a', destination: 'b', action: 'allow', description: 'a field of a newer version' }], auditLog: true };
    const written: unknown[] = [];
    await withServer(async (req, res) => {
      let body = '';
      for await (const chunk of req) body += chunk;
      res.setHeader('content-type', 'application/json');
      // A stored timeout past this version's 24h cap (an older version's value), and fields it does not know.
      if (req.url === '/api/v1/routes') return res.end(JSON.stringify({ backend: [{ match: { pathPrefix: '/' }, split: { v1: 100 }, timeout: '99h', retryBudget: 0.2 }] }));
      if (req.url === '/api/v1/routes/backend') return res.end(JSON.stringify([{ match: { pathPrefix: '/', query: { a: 'b' } }, split: { v1: 100 } }]));
      if (req.url === '/api/v1/intentions') {
        if (req.method === 'PUT') written.push((intentions = JSON.parse(body)));
        return res.writeHead(200, { etag: '"3"' }).end(JSON.stringify(intentions));
      }
      res.writeHead(404).end(JSON.stringify({ error: { code: 'not-found', message: `no ${req.url}` } }));
    }, async (url) => {
      const all = await skein(['get', 'routes', '--control-plane', url]);
      expect(all).toEqual({ code: 0, stdout: expect.stringMatching(/\nbackend\s+rule-0\s+prefix=\/\s+v1=100\s+timeout=99h\n$/), stderr: '' });
      const one = await skein(['get', 'routes', 'backend', '--control-plane', url]);
      expect(one).toEqual({ code: 0, stdout: expect.stringMatching(/\nbackend\s+rule-0\s+prefix=\/\s+v1=100\s+-?\n$/), stderr: '' });
      const read = await skein(['get', 'intentions', '--control-plane', url]);
      expect(read).toEqual({ code: 0, stdout: 'default action: deny\nSOURCE  DESTINATION  ACTION\na       b            allow\n', stderr: '' });
      const edit = await skein(['intention', 'allow', 'c', 'd', '--control-plane', url]);
      expect(edit).toEqual({ code: 0, stdout: 'c -> d: allow\n', stderr: '' });
      // What it did not know went back as it came.
      expect(written).toEqual([{ defaultAction: 'deny', rules: [{ source: 'c', destination: 'd', action: 'allow' }, { source: 'a', destination: 'b', action: 'allow', description: 'a field of a newer version' }], auditLog: true }]);
    });
  });

  /**
   * A stand-in for a control plane older than this CLI: it relays the real one's answers to
   * GETs with `older` removing from each body what was added since, as one from before sent it.
   */
  function olderControlPlane(older: (path: string, body: Record<string, unknown>) => void): RequestListener {
    return (req, res) => {
      void fetch(`${cp.adminUrl}${req.url}`, { headers: { authorization: `Bearer ${cp.adminToken}` } }).then(async (real) => {
        const body = (await real.json()) as Record<string, unknown>;
        older(new URL(req.url!, cp.adminUrl).pathname, body);
        res.writeHead(real.status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      });
    };
  }

  it("shows what a control plane one version older reports, and says what it does not report rather than show none", async () => {
    await cp.api.put('/api/v1/services/skew/policy', { timeout: '3s' });
    const beforeEjections = olderControlPlane((path, body) => {
      if (path === '/api/v1/stats') delete body.ejections;
      if (path === '/api/v1/explain') {
        delete body.ejectedEndpoints;
        delete body.openBreakers;
        delete body.intention;
        delete (body.policy as Record<string, unknown>).retriedAfterSent;
      }
    });
    await withServer(beforeEjections, async (url) => {
      const stat = await skein(['stat', 'skew', '--control-plane', url]);
      expect(stat.code).toBe(0);
      expect(stat.stdout.split('\n').slice(1)).toEqual(['no traffic to or from skew in the last minute', '', 'ejected endpoints: not reported by this control plane (older than this CLI)', '']);
      // JSON passes on what the control plane sent: no ejections, rather than none.
      expect(JSON.parse((await skein(['stat', 'skew', '-o', 'json', '--control-plane', url])).stdout)).not.toHaveProperty('ejections');

      const explain = await skein(['explain', 'skew', 'GET', '/', '--from', 'web', '--control-plane', url]);
      expect(explain.code).toBe(0);
      expect(explain.stdout).toContain('\n  whether intentions admit web: not reported by this control plane (older than this CLI)\n');
      expect(explain.stdout).toContain("\ncallers' open breakers: not reported by this control plane (older than this CLI)\nejected endpoints: not reported by this control plane (older than this CLI)\n");
      // Retried (a GET) or not, it does not say: nothing is claimed of it.
      expect(explain.stdout).toMatch(/\nretries: 2 on /);
      expect(explain.stdout).not.toContain('not idempotent');
    });
    // The control plane of this version says all of it.
    const current = await skein(['explain', 'skew', 'GET', '/', '--from', 'web']);
    expect(current.stdout).toContain('\n  intentions: web -> skew ');
    expect(current.stdout).not.toContain('not reported');
  });

  it('says the control plane is older than the CLI when it has no API for the command', async () => {
    // A stand-in for a control plane from before `skein apply` and the canary actions: its router has no such routes.
    const withoutNewRoutes: RequestListener = (req, res) => {
      void fetch(`${cp.adminUrl}/api/v0-missing`, { headers: { authorization: `Bearer ${cp.adminToken}` } }).then(async (real) => {
        const body = (await real.text()).replace('/api/v0-missing', new URL(req.url!, cp.adminUrl).pathname);
        res.writeHead(real.status, { 'content-type': 'application/json' }).end(body);
      });
    };
    const file = join(tempDir(), 'mesh.yaml');
    writeFileSync(file, 'services:\n  skew: { timeout: 2s }\n');
    await withServer(withoutNewRoutes, async (url) => {
      for (const args of [['apply', '-f', file], ['canary', 'skew', '--pause']]) {
        const res = await skein([...args, '--control-plane', url]);
        expect(res.code, args.join(' ')).toBe(1);
        expect(res.stderr, args.join(' ')).toMatch(/404 not-found: no such endpoint: \/api\/v1\/\S+; the control plane is older than this CLI and does not have this command's API: upgrade it to use the command\n$/);
      }
    });
    // An unknown service is another 404, about the service, not the API.
    expect((await skein(['get', 'routes', 'nobody'])).stderr).not.toContain('older than this CLI');
  });

  /** Runs every admin command, writes included, against each of `others`: each fails (exit 1) with one line naming the URL that gave `answered`. */
  async function notSkeinFromEveryCommand(others: Server[], answered: string): Promise<void> {
    for (const other of others) await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    try {
      for (const other of others) {
        const url = `http://127.0.0.1:${(other.address() as { port: number }).port}`;
        const commands = [
          ['token', 'create', 'orders'],
          ['token', 'revoke', 'skt_whatever'],
          ['split', 'shop', 'v1=100'],
          ['intention', 'deny', 'a', 'b'],
          ['intention', 'default', 'deny'],
          ['canary', 'shop', '--to', 'v2', '--detach'],
          ['canary', 'shop', '--to', 'v2'],
          ['canary', 'shop', '--status'],
          ['canary', 'shop', '--abort'],
          ['ca', 'status'],
          ['ca', 'rotate'],
          ['stat'],
          ['explain', 'shop', 'GET', '/'],
          ['get', 'routes', 'shop'],
          ['tap', 'shop'],
        ];
        for (const args of commands) {
          const res = await skein([...args, '--control-plane', url]);
          const what = `${args.join(' ')} against ${url}`;
          expect(res.code, what).toBe(1);
          expect(res.stdout, what).toBe('');
          expect(res.stderr, what).toMatch(new RegExp(`^skein: ${url}/api/v1/\\S+ answered ${answered}: is ${url} a Skein control plane's admin API\\? \\(set --control-plane or SKEIN_ADMIN_URL\\)\n$`));
        }
      }
    } finally {
      for (const other of others) {
        other.closeAllConnections();
        await new Promise((resolve) => other.close(resolve));
      }
    }
  }

  it('says so from every command, writes included, when --control-plane answers 200 but is not a Skein control plane', async () => {
    // One answers every request with some other service's JSON, the other with an empty 200.
    const others = [createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok","items":{}}')), createServer((_req, res) => res.writeHead(200).end())];
    await notSkeinFromEveryCommand(others, 'something other than [^\n]+');
  });

  it('says so from every command, naming the URL, when --control-plane answers an error that is not an admin API error', async () => {
    // A plain 404 (another server's missing page), and a 500 with an HTML page.
    const others = [createServer((_req, res) => res.writeHead(404).end()), createServer((_req, res) => res.writeHead(500, { 'content-type': 'text/html' }).end('<html>oops</html>'))];
    await notSkeinFromEveryCommand(others, '(404 Not Found|500 Internal Server Error) without an admin API error in its body');
  });

  it('intention allow|deny edits the rules, exact pairs first', async () => {
    expect((await skein(['intention', 'deny', '*', 'payments'])).code).toBe(0);
    expect((await skein(['intention', 'allow', 'orders', 'payments'])).stdout).toBe('orders -> payments: allow\n');
    const rules = JSON.parse((await skein(['get', 'intentions', 'payments', '-o', 'json'])).stdout).rules;
    expect(rules).toEqual([
      { source: 'orders', destination: 'payments', action: 'allow' },
      { source: '*', destination: 'payments', action: 'deny' },
    ]);
  });

  it('intention keeps an exact pair ahead of a wildcard rule set after it: gateway -> orders stays allowed', async () => {
    expect((await skein(['intention', 'allow', 'gateway', 'orders'])).code).toBe(0);
    expect(await skein(['intention', 'deny', 'gateway', '*'])).toEqual({ code: 0, stdout: 'gateway -> *: deny\n', stderr: '' });
    const stored = (await cp.api.get<IntentionsInput>('/api/v1/intentions')).body;
    const at = (source: string, destination: string) => stored.rules!.findIndex((r) => r.source === source && r.destination === destination);
    expect(stored.rules![at('gateway', 'orders')]).toEqual({ source: 'gateway', destination: 'orders', action: 'allow' });
    expect(at('gateway', 'orders')).toBeLessThan(at('gateway', '*'));
    const decide = compileIntentions(intentions.parse(stored));
    expect(decide('gateway', 'orders')).toEqual({ allowed: true, rule: at('gateway', 'orders') });
    expect(decide('gateway', 'inventory')).toEqual({ allowed: false, rule: at('gateway', '*') });
    // Set again, the wildcard rule still goes after the exact pair.
    expect((await skein(['intention', 'deny', 'gateway', '*'])).code).toBe(0);
    const again = (await cp.api.get<IntentionsInput>('/api/v1/intentions')).body;
    expect(compileIntentions(intentions.parse(again))('gateway', 'orders')).toMatchObject({ allowed: true });
  });

  it('intention allow from 20 CLIs at once: every edit lands (412s retried after a random, growing wait)', async () => {
    const sources = Array.from({ length: 20 }, (_, i) => `crowd${i}`);
    const results = await Promise.all(sources.map((source) => skein(['intention', 'allow', source, 'stadium'])));
    expect(results.map((r) => `${r.code} ${r.stderr}`)).toEqual(sources.map(() => '0 '));
    const rules = JSON.parse((await skein(['get', 'intentions', 'stadium', '-o', 'json'])).stdout).rules as { source: string }[];
    expect(rules.map((r) => r.source).sort()).toEqual([...sources].sort());
  });

  it('get intentions NAME shows only the rules naming NAME as source or destination', async () => {
    for (const [action, source, destination] of [['allow', 'billing', 'ledger'], ['deny', 'ledger', 'vault'], ['allow', '*', 'ledger'], ['deny', 'billing', '*']]) {
      expect((await skein(['intention', action!, source!, destination!])).code).toBe(0);
    }
    const ledger = JSON.parse((await skein(['get', 'intentions', 'ledger', '-o', 'json'])).stdout);
    expect(ledger.rules).toEqual([
      { source: 'ledger', destination: 'vault', action: 'deny' },
      { source: 'billing', destination: 'ledger', action: 'allow' },
      { source: '*', destination: 'ledger', action: 'allow' },
    ]);
    const table = await skein(['get', 'intentions', 'vault']);
    expect(table.stdout).toMatch(/^default action: \w+\nSOURCE\s+DESTINATION\s+ACTION\nledger\s+vault\s+deny\n$/);
    const unknown = await skein(['get', 'intentions', 'nothere', '-o', 'json']);
    expect(unknown.code).toBe(0);
    expect(JSON.parse(unknown.stdout).rules).toEqual([]);
    expect((await skein(['get', 'intentions', 'nothere'])).stdout).toMatch(/^default action: \w+\nSOURCE\s+DESTINATION\s+ACTION\n$/);
  });

  it('explain shows the matching rule, why others did not match, and the policy', async () => {
    const res = await skein(['explain', 'catalog', 'GET', '/products/1']);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/rule 0 "canary" does not match: .*x-canary/);
    expect(res.stdout).toMatch(/rule 1 "rule-1" matches/);
    expect(res.stdout).toMatch(/v1\s+80%\s+version=v1/);
    expect(res.stdout).toMatch(/timeout 2s/);
    // The rule's own retry conditions, status codes among them.
    expect(res.stdout).toMatch(/\nretries: 1 on connect-failure,503,429, per try 1s,/);
    expect(JSON.parse((await skein(['explain', 'catalog', 'GET', '/products/1', '-o', 'json'])).stdout).policy.retries.on).toEqual(['connect-failure', 503, 429]);
    const canary = await skein(['explain', 'catalog', 'GET', '/products/1', '-H', 'x-canary:true', '-o', 'json']);
    expect(JSON.parse(canary.stdout).matched.name).toBe('canary');
  });

  it('explain says where a subset of the split fails over to, where its requests go while it has no endpoint, and which targets are left out', async () => {
    await cp.api.put('/api/v1/services/shelf/policy', { subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } }, failover: { v2: [{ subset: 'v1' }, { service: 'nowhere' }] } });
    await cp.api.put('/api/v1/routes/shelf', [{ split: { v1: 50, v2: 50 } }]);
    const none = await skein(['explain', 'shelf', 'GET', '/']);
    expect(none.code, none.stderr).toBe(0);
    expect(none.stdout).toMatch(/\nv2\s+50%\s+version=v2\s+none \(fails over, below\)\n/);
    expect(none.stdout).toContain('\nfailover: v2 has no endpoint, nor has shelf/v1: 503 no-healthy-endpoints\n');
    // Taken by the control plane (the service may come later), left out by the sidecars, and said so.
    expect(none.stdout).toContain('\nfailover target nowhere/(all) of v2 is left out: nowhere is not in the snapshot\n');
    const v1 = await announceInstance(cp, 'shelf', 'v1');
    try {
      const res = await waitUntil(async () => {
        const r = await skein(['explain', 'shelf', 'GET', '/']);
        return r.stdout.includes('failover: v2 has no endpoint: its requests go to shelf/v1 (') && r;
      }, { what: 'explain to see the v1 instance' });
      expect(res.stdout).not.toContain('failover: when v1');
    } finally {
      await v1.close();
    }
  });

  it('explain says what a ring-hash destination hashes; a policy with ring-hash and no hashOn is refused naming it', async () => {
    await cp.api.put('/api/v1/services/sticky/policy', { lb: 'ring-hash', hashOn: { cookie: 'sid' } });
    const res = await skein(['explain', 'sticky', 'GET', '/cart']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/protocol http, lb ring-hash on cookie sid, timeout 3s/);
    expect(res.stdout).toMatch(/ring-hash: the request has no cookie sid, so each such request goes to a random endpoint/);
    const withCookie = await skein(['explain', 'sticky', 'GET', '/cart', '-H', 'cookie: sid=s-1', '-o', 'json']);
    expect(JSON.parse(withCookie.stdout).affinity).toEqual({ value: 's-1', endpoints: [] });
    expect((await skein(['explain', 'sticky', 'GET', '/cart', '-H', 'cookie: sid=s-1'])).stdout).toContain('ring-hash on cookie sid "s-1": one endpoint for every request with it, which the snapshot cannot name (it lists no endpoints: the sidecars find them in discovery)\n');
    const refused = await apiError(cp.api.put('/api/v1/services/sticky/policy', { lb: 'ring-hash' }));
    expect({ status: refused.status, problems: refused.problems }).toEqual({ status: 422, problems: ['hashOn: lb ring-hash needs hashOn: the header, cookie or query parameter to hash'] });
  });

  it('exits quietly when the reader of its output goes away', async () => {
    for (const args of [['get', 'routes'], ['ca', 'status'], ['explain', 'catalog', 'GET', '/products/1']]) {
      const res = await skeinIntoClosedPipe(args);
      expect(res.stderr, args.join(' ')).toBe('');
      expect(res.code, args.join(' ')).toBe(0);
    }
  });

  it('skein tap says the control plane closed the stream when it goes away mid-tap (exit 1)', async () => {
    const other = await startControlPlane(procs);
    await other.api.put('/api/v1/services/lonely/policy', { timeout: '2s' });
    const tap = procs.skein('skein tap', ['tap', 'lonely', '--control-plane', other.adminUrl]);
    await waitUntil(() => tap.output().includes('waiting for one'), { what: 'skein tap to open its stream' });
    other.child.kill('SIGKILL');
    const exit = await tap.exited;
    expect(exit.code).toBe(1);
    expect(tap.output()).toMatch(new RegExp(`\\nskein: the control plane at ${other.adminUrl} closed the tap stream \\(other side closed\\)\\n$`));
  });

  /** Answers as a control plane would about service `lonely` (no sidecar yet), except that its tap stream is `events`, then ends. */
  const tapOfLonely = (events: string): RequestListener => (req, res) => {
    if (req.url!.startsWith('/api/v1/tap')) return void res.writeHead(200, { 'content-type': 'text/event-stream' }).end(events);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(req.url!.startsWith('/api/v1/proxies') ? { snapshotVersion: '1', proxies: [] } : { name: 'lonely', instances: [], subsets: [] }));
  };

  it('skein tap fails when the stream ends, as a control plane does only when it goes away, rather than exit 0 as if done', async () => {
    // Ends the tap at once.
    await withServer(tapOfLonely(': tapping lonely\n\n'), async (url) => {
      const res = await skein(['tap', 'lonely', '--control-plane', url]);
      expect(res).toEqual({ code: 1, stdout: '', stderr: `no sidecar of lonely is connected yet; waiting for one (Ctrl-C to stop)\nskein: the control plane at ${url} closed the tap stream\n` });
    });
  });

  it('skein tap names the URL of a stream whose events are not JSON, as of any answer no control plane gives', async () => {
    await withServer(tapOfLonely('data: <html>\n\n'), async (url) => {
      const res = await skein(['tap', 'lonely', '--control-plane', url]);
      expect(res.code).toBe(1);
      expect(res.stderr.split('\n').slice(1)).toEqual([
        expect.stringMatching(new RegExp(`^skein: ${url}/api/v1/tap\\?service=lonely answered an event whose data is not JSON \\(.+\\): is ${url} a Skein control plane's admin API\\? \\(set --control-plane or SKEIN_ADMIN_URL\\)$`)),
        '',
      ]);
    });
  });

  it('refuses a --control-plane URL with a query or fragment, which would end up before the API paths', async () => {
    const res = await skein(['get', 'services', '--control-plane', `${cp.adminUrl}?x=1`]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/^error: option '--control-plane <url>' argument '.*\?x=1' is invalid\. an admin API URL has no query or fragment/);
  });

  it('get proxies prints the table header and the current snapshot version', async () => {
    const res = await skein(['get', 'proxies']);
    expect(res.stdout).toMatch(/^snapshot version \d+\nSERVICE\s+INSTANCE\s+VERSION\s+ADDRESS\s+STATE/);
  });
});
