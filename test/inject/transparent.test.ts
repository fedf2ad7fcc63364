/**
 * Transparent mode for real: the init container's iptables script runs inside a network
 * namespace made for the test, and an app's plain HTTP to another address on port 80 must
 * land on the sidecar's outbound port carrying its Host header, while the sidecar's own uid
 * and ports outside the list go straight through. Needs root, `ip` and `iptables`; without
 * them the test is skipped with the missing piece in its name.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, test } from 'vitest';
import { redirectScript } from '../../inject/transparent.js';
import { DEFAULT_INJECT_OPTIONS, SIDECAR_UID } from '../../inject/options.js';

const NS = `skein-t-${randomBytes(3).toString('hex')}`;
const APP_ADDRESS = '10.203.0.1';

function run(cmd: string, args: string[]): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 20_000 });
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
 * Runs inside the namespace: a stand-in for the sidecar's outbound listener on
 * 127.0.0.1:OUTBOUND, then one request per case, the excluded-uid case from a child process
 * running as the sidecar's uid. Prints one JSON result per case.
 */
const PROBE = `
import http from 'node:http';
import { execFileSync } from 'node:child_process';
const [mode, outbound, address, uid] = process.argv.slice(2);
function get(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: address, port: Number(port), path: '/items?x=1', headers: { host: 'catalog' }, timeout: 3000 }, (res) => {
      let body = ''; res.on('data', (c) => (body += c)); res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(body) }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ error: err.code ?? err.message }));
  });
}
if (mode === 'client') {
  console.log(JSON.stringify(await get(80)));
} else {
  const server = http.createServer((req, res) => res.end(JSON.stringify({ host: req.headers.host, path: req.url })));
  await new Promise((r) => server.listen(Number(outbound), '127.0.0.1', r));
  const results = { redirected: await get(80), otherPort: await get(9999) };
  results.sidecarUid = JSON.parse(execFileSync(process.execPath, [process.argv[1], 'client', outbound, address], { uid: Number(uid), gid: Number(uid), encoding: 'utf8' }));
  console.log(JSON.stringify(results));
  server.close();
}
`;

describe('transparent mode', () => {
  const title = 'iptables redirect of outbound HTTP to the sidecar, in a network namespace';
  test.skipIf(missing !== undefined)(missing ? `${title} (skipped: ${missing})` : title, () => {
    // The "other pod" address lives on the namespace's loopback: nothing leaves the namespace.
    for (const args of [['link', 'set', 'lo', 'up'], ['addr', 'add', `${APP_ADDRESS}/32`, 'dev', 'lo']]) {
      const r = inNs('ip', ...args);
      expect(r.ok, r.out).toBe(true);
    }
    const script = redirectScript({ outboundPort: DEFAULT_INJECT_OPTIONS.outboundPort, redirectPorts: [80, 8080] });
    const first = inNs('sh', '-c', script);
    expect(first.ok, first.out).toBe(true);
    const rulesOnce = inNs('iptables', '-t', 'nat', '-S').out;
    // An init container may run again in the same namespace: same rules, no duplicates.
    expect(inNs('sh', '-c', script).ok).toBe(true);
    expect(inNs('iptables', '-t', 'nat', '-S').out).toBe(rulesOnce);
    expect(rulesOnce.match(/-j SKEIN_OUTPUT/g)).toHaveLength(1);

    const probe = join(dir, 'probe.mjs');
    writeFileSync(probe, PROBE);
    chmodSync(dir, 0o755); // the sidecar-uid child must read the probe too
    const r = inNs(process.execPath, probe, 'server', String(DEFAULT_INJECT_OPTIONS.outboundPort), APP_ADDRESS, String(SIDECAR_UID));
    expect(r.ok, r.out).toBe(true);
    const results = JSON.parse(r.out.trim().split('\n').at(-1)!) as Record<string, { status?: number; body?: unknown; error?: string }>;
    // Port 80 to another address reached the outbound listener, Host header intact.
    expect(results.redirected).toEqual({ status: 200, body: { host: 'catalog', path: '/items?x=1' } });
    // Ports not listed, and the sidecar's own traffic, are not redirected: nothing listens there.
    expect(results.otherPort).toEqual({ error: 'ECONNREFUSED' });
    expect(results.sidecarUid).toEqual({ error: 'ECONNREFUSED' });
  });
});
