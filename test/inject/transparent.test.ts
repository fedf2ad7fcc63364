/**
 * Transparent mode for real: the init container's iptables script runs inside a network
 * namespace made for the test, and an app's plain HTTP to another address on port 80 must
 * land on a real sidecar's outbound port and be routed by its Host header, while the
 * sidecar's own uid and ports outside the list go straight through. Every address used is on
 * the namespace's loopback device: nothing leaves it. Needs root, `ip` and `iptables`;
 * without them the test is skipped with the missing piece in its name.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, test } from 'vitest';
import { redirectScript } from '../../inject/transparent.js';
import { DEFAULT_INJECT_OPTIONS, SIDECAR_UID } from '../../inject/options.js';
import { writeConfigFile } from '../support/index.js';

const NS = `skein-t-${randomBytes(3).toString('hex')}`;
const APP_ADDRESS = '10.203.0.1';
/** catalog's port, itself in the redirect list: only the sidecar's uid exclusion lets the sidecar reach it. */
const CATALOG_PORT = 8080;
const SKEIN_BIN = join(import.meta.dirname, '..', '..', 'bin', 'skein.js');

function run(cmd: string, args: string[], timeout = 20_000): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

function inNs(cmd: string, ...args: string[]): { ok: boolean; out: string } {
  return run('ip', ['netns', 'exec', NS, cmd, ...args]);
}

/** Why this machine cannot run the test, or undefined when it can. */
function missingPrerequisite(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root';
  for (const command of ['ip', 'iptables']) {
    if (!run('sh', ['-c', `command -v ${command}`]).ok) return `command not found: ${command}`;
  }
  const add = run('ip', ['netns', 'add', NS]);
  if (!add.ok) return `ip netns add failed: ${add.out.trim()}`;
  const nat = inNs('iptables', '-t', 'nat', '-S');
  if (!nat.ok) return `iptables nat table unavailable: ${nat.out.trim()}`;
  return undefined;
}

const missing = missingPrerequisite();
const dir = mkdtempSync(join(tmpdir(), 'skein-netns-'));

afterAll(() => {
  run('ip', ['netns', 'del', NS]);
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Runs inside the namespace as root (the app's uid): the upstream `catalog` on
 * APP_ADDRESS:8080, the app `web` on 127.0.0.1:9000, and a real `skein sidecar` for web as
 * the sidecar's uid with its outbound listener on 127.0.0.1:OUTBOUND and catalog's endpoint
 * at APP_ADDRESS:8080. Port 8080 is itself redirected, so the sidecar's own call to catalog
 * only gets through because its uid is let out. Then one request per case, the
 * excluded-uid case from a child process running as the sidecar's uid. Prints one JSON line.
 */
const PROBE = `
import http from 'node:http';
import { spawn, execFileSync } from 'node:child_process';
const [mode, outbound, address, uid, skeinBin, config] = process.argv.slice(2);
function get(host, port, path, headers = {}) {
  return new Promise((resolve) => {
    const req = http.get({ host, port: Number(port), path, headers, timeout: 3000 }, (res) => {
      let body = ''; res.on('data', (c) => (body += c)); res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ error: err.code ?? err.message }));
  });
}
const json = (r) => {
  if (r.body === undefined) return r;
  try { return { status: r.status, body: JSON.parse(r.body) }; } catch { return { status: r.status, text: r.body }; }
};
const toCatalog = (port) => get(address, port, '/items?x=1', { host: 'catalog' }).then(json);
if (mode === 'client') {
  console.log(JSON.stringify(await toCatalog(80)));
} else {
  const listen = (handler, port, host) => new Promise((r) => { const s = http.createServer(handler); s.listen(port, host, () => r(s)); });
  const catalog = await listen((req, res) => res.end(JSON.stringify({ host: req.headers.host, path: req.url, skeinAttempt: req.headers['x-skein-attempt'] ?? null })), 8080, address);
  const app = await listen((req, res) => res.end('ok'), 9000, '127.0.0.1');
  const args = [skeinBin, 'sidecar', '--service', 'web', '--app-port', '9000', '--config', config, '--inbound-host', '127.0.0.1',
    '--inbound-port', '15443', '--outbound-port', outbound, '--admin-port', '15000', '--advertise-address', '127.0.0.1'];
  const sidecar = spawn(process.execPath, args, { uid: Number(uid), gid: Number(uid), stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  sidecar.stdout.on('data', (d) => (log += d)); sidecar.stderr.on('data', (d) => (log += d));
  const stop = () => sidecar.exitCode === null && sidecar.kill('SIGKILL');
  process.on('exit', stop); process.on('SIGTERM', () => process.exit(1));
  const deadline = Date.now() + 30000;
  while ((await get('127.0.0.1', 15000, '/ready')).status !== 200) {
    if (Date.now() > deadline || sidecar.exitCode !== null) { console.log(JSON.stringify({ error: 'sidecar not ready', log })); process.exit(1); }
    await new Promise((r) => setTimeout(r, 100));
  }
  const results = { redirected: await toCatalog(80), otherPort: await toCatalog(9999) };
  results.sidecarUid = JSON.parse(execFileSync(process.execPath, [process.argv[1], 'client', outbound, address], { uid: Number(uid), gid: Number(uid), encoding: 'utf8' }));
  console.log(JSON.stringify(results));
  stop(); catalog.close(); app.close();
}
`;

describe('transparent mode', () => {
  const title = 'iptables redirect of outbound HTTP to the sidecar, in a network namespace';
  test.skipIf(missing !== undefined)(missing ? `${title} (skipped: ${missing})` : title, () => {
    // The "other pod" address lives on the namespace's loopback: nothing leaves the namespace
    // (`replace`, so a retry of this test in the same namespace starts the same way).
    for (const args of [['link', 'set', 'lo', 'up'], ['addr', 'replace', `${APP_ADDRESS}/32`, 'dev', 'lo']]) {
      const r = inNs('ip', ...args);
      expect(r.ok, r.out).toBe(true);
    }
    const script = redirectScript({ outboundPort: DEFAULT_INJECT_OPTIONS.outboundPort, redirectPorts: [80, CATALOG_PORT] });
    const first = inNs('sh', '-c', script);
    expect(first.ok, first.out).toBe(true);
    const rulesOnce = inNs('iptables', '-t', 'nat', '-S').out;
    // An init container may run again in the same namespace: same rules, no duplicates.
    expect(inNs('sh', '-c', script).ok).toBe(true);
    expect(inNs('iptables', '-t', 'nat', '-S').out).toBe(rulesOnce);
    expect(rulesOnce.match(/-j SKEIN_OUTPUT/g)).toHaveLength(1);

    const probe = join(dir, 'probe.mjs');
    writeFileSync(probe, PROBE);
    const config = writeConfigFile(join(dir, 'skein.json'), { version: '1', services: { catalog: { endpoints: [{ address: APP_ADDRESS, port: CATALOG_PORT }] } } });
    chmodSync(dir, 0o755); // the sidecar-uid processes must read the probe and the config too
    const r = run('ip', ['netns', 'exec', NS, process.execPath, probe, 'server', String(DEFAULT_INJECT_OPTIONS.outboundPort), APP_ADDRESS, String(SIDECAR_UID), SKEIN_BIN, config], 60_000);
    expect(r.ok, r.out).toBe(true);
    const results = JSON.parse(r.out.trim().split('\n').at(-1)!) as Record<string, { status?: number; body?: unknown; error?: string }>;
    // Port 80 to another address reached the sidecar, which routed it by its Host header to catalog.
    expect(results.redirected).toEqual({ status: 200, body: { host: 'catalog', path: '/items?x=1', skeinAttempt: '1' } });
    // Ports not listed, and the sidecar's own traffic, are not redirected: nothing listens there.
    expect(results.otherPort).toEqual({ error: 'ECONNREFUSED' });
    expect(results.sidecarUid).toEqual({ error: 'ECONNREFUSED' });
  });
});
