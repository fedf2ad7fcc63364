/**
 * Starts a real control plane must refuse, with a message that says what to do: a data dir
 * another control plane owns (exit 1, naming the dir and the holder's pid; a holder killed
 * with SIGKILL does not block the next start), a trust domain outside the SPIFFE rule
 * or a `--max-body` of nothing, webhook flags an injected sidecar could not use (exit 2, before anything is written), a data dir that cannot be made (exit 1, naming it), and hand-corrupted store entries, of the mesh config
 * or of bootstrap tokens and canary rollouts (exit 1, naming each key, the store left as it was).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePorts, Processes, tempDir, waitUntil, type Child } from '../support/index.js';
import { announceInstance, startControlPlane, type ControlPlaneProcess } from './harness.js';

const procs = new Processes();
afterAll(() => procs.killAll());

/** A running rollout of `service` to v2 (which needs a healthy v2 instance to start; it leaves after). */
async function startedRollout(cp: ControlPlaneProcess, service: string): Promise<void> {
  const v2 = await announceInstance(cp, service, 'v2');
  await cp.api.post(`/api/v1/canaries/${service}`, { to: 'v2', interval: '1h' });
  await v2.close();
}

/** Starts `skein control-plane` on free ports and waits (with a deadline) for it to exit. */
async function refusedStart(name: string, dataDir: string, args: readonly string[] = []): Promise<Child & { code: number | null }> {
  const [httpPort, grpcPort] = await freePorts(2);
  const child = procs.skein(name, [
    'control-plane', '--data-dir', dataDir, '--http-port', String(httpPort), '--grpc-port', String(grpcPort), '--grpc-host', '127.0.0.1', ...args,
  ]);
  await waitUntil(() => child.hasExited, { what: `${name} to exit`, timeoutMs: 20_000 }).catch((err: Error) => {
    throw new Error(`${err.message}\n${child.output()}`);
  });
  return Object.assign(child, { code: (await child.exited).code });
}

describe('refused starts', () => {
  it('refuses a second control plane on a data dir in use, and not after the owner crashed', async () => {
    const first = await startControlPlane(procs);
    await first.api.put('/api/v1/services/catalog/policy', { timeout: '2s' });

    const second = await refusedStart('second control-plane', first.dataDir);
    expect(second.code).toBe(1);
    expect(second.output()).toContain(`the data dir ${first.dataDir} is in use by another control plane (pid ${first.child.process.pid})`);

    // The first one still owns its state: earlier and later writes are all there.
    await first.api.put('/api/v1/services/orders/policy', { timeout: '3s' });
    expect((await first.api.get('/api/v1/services/catalog/policy')).body).toEqual({ timeout: '2s' });

    first.child.kill('SIGKILL');
    await first.child.exited;
    const third = await startControlPlane(procs, { dataDir: first.dataDir });
    expect((await third.api.get('/api/v1/services/catalog/policy')).body).toEqual({ timeout: '2s' });
    expect((await third.api.get('/api/v1/services/orders/policy')).body).toEqual({ timeout: '3s' });
  }, 60_000);

  it('refuses a trust domain outside the SPIFFE rule as a usage error, before touching the data dir', async () => {
    const dataDir = join(tempDir('skein-cp-'), 'never-created');
    const cp = await refusedStart('bad trust domain', dataDir, ['--trust-domain', 'Bad Domain!/x']);
    expect(cp.code).toBe(2);
    expect(cp.output()).toContain('"Bad Domain!/x" is not a SPIFFE trust domain: use lowercase letters, digits, dots, dashes and underscores');
    expect(existsSync(dataDir)).toBe(false);
  });

  it('refuses a --max-body of nothing or of no size as a usage error, before touching the data dir', async () => {
    for (const [value, message] of [
      ['0', 'must be more than 0 bytes (got 0)'],
      ['1.5MiB', 'not a size: 1.5MiB (use e.g. 64KiB, 10MiB, 1GB or plain bytes)'],
    ] as const) {
      const dataDir = join(tempDir('skein-cp-'), 'never-created');
      const cp = await refusedStart(`--max-body ${value}`, dataDir, ['--max-body', value]);
      expect(cp.code, value).toBe(2);
      expect(cp.output()).toContain(message);
      expect(existsSync(dataDir)).toBe(false);
    }
  });

  it('refuses a --cert-ttl or --keepalive no sidecar could live with as a usage error, before touching the data dir', async () => {
    // A leaf of 0 or 1ms is expired when issued: every sidecar would renew in a tight loop.
    for (const [args, message] of [
      [['--cert-ttl', '0'], "argument '0' is invalid. 0 is out of range: must be between 2s and 8760h"],
      [['--cert-ttl', '500ms'], '500ms is out of range: must be between 2s and 8760h'],
      [['--cert-ttl', '9000h'], '9000h is out of range'],
      [['--keepalive', '0s'], "option '--keepalive <duration>' argument '0s' is invalid. 0s is out of range: must be between 1s and 1h"],
    ] as const) {
      const dataDir = join(tempDir('skein-cp-'), 'never-created');
      const cp = await refusedStart(args.join(' '), dataDir, [...args]);
      expect(cp.code, args.join(' ')).toBe(2);
      expect(cp.output()).toContain(message);
      expect(existsSync(dataDir)).toBe(false);
    }
  });

  it('refuses webhook flags an injected sidecar could not use, and a port that is not decimal, as usage errors before touching the data dir', async () => {
    for (const [args, message] of [
      [['--inject-image', 'Bad Image'], 'not an image reference'],
      [['--inject-control-plane', 'no port here'], 'expected HOST:PORT'],
      [['--inject-consul', 'ftp://consul:8500'], "option '--inject-consul <url>' argument 'ftp://consul:8500' is invalid"],
      [['--inject-access-log', 'stdout'], "option '--inject-access-log <format>' argument 'stdout' is invalid. Allowed choices are json, text, off."],
      [['--webhook-port', '0x3039'], 'not a port number: 0x3039 (a decimal number from 0 to 65535)'],
    ] as const) {
      const dataDir = join(tempDir('skein-cp-'), 'never-created');
      const cp = await refusedStart(`${args[0]} ${args[1]}`, dataDir, args);
      expect(cp.code, cp.output()).toBe(2);
      expect(cp.output()).toContain(message);
      expect(existsSync(dataDir)).toBe(false);
    }
  });

  it('refuses a data dir it cannot create, naming it, at once (node\'s recursive mkdir spins for ever under /proc)', async () => {
    const file = join(tempDir('skein-cp-'), 'a-file');
    writeFileSync(file, '');
    for (const [dataDir, message] of [
      ['/proc/skein-no-such-dir/data', 'cannot create the data dir /proc/skein-no-such-dir/data: mkdir /proc/skein-no-such-dir failed (ENOENT)'],
      [join(file, 'data'), `cannot use the data dir ${join(file, 'data')}: ${file} is not a directory`],
    ] as const) {
      const cp = await refusedStart(`data dir ${dataDir}`, dataDir);
      expect(cp.code, cp.output()).toBe(1);
      expect(cp.output()).toContain(message);
    }
    // Missing parents are still made.
    const nested = join(tempDir('skein-cp-'), 'a', 'b', 'c');
    const started = await startControlPlane(procs, { dataDir: nested });
    expect(existsSync(join(nested, 'store.json')) || existsSync(join(nested, 'lock'))).toBe(true);
    started.child.kill('SIGTERM');
    await started.child.exited;
  });

  it('refuses a hand-corrupted store entry, naming the key, and changes nothing', async () => {
    const cp = await startControlPlane(procs);
    await cp.api.put('/api/v1/services/catalog/policy', { subsets: { v1: { version: 'v1' } } });
    await cp.api.put('/api/v1/routes/catalog', [{ split: { v1: 100 } }]);
    cp.child.kill('SIGTERM');
    expect((await cp.child.exited).code).toBe(0);
    const file = join(cp.dataDir, 'store.json');
    const stored = JSON.parse(readFileSync(file, 'utf8')) as { entries: Record<string, { value: unknown }> };
    stored.entries['routes/catalog']!.value = 'garbage';
    writeFileSync(file, JSON.stringify(stored));
    const corrupted = readFileSync(file, 'utf8');

    const refused = await refusedStart('corrupted store', cp.dataDir);
    expect(refused.code).toBe(1);
    expect(refused.output()).toContain(`skein: invalid config in the store (${file}), refusing to start: routes/catalog: (root): Expected array, received string; fix or delete these entries there (nothing was changed)`);
    // No snapshot was ever published: nothing about sidecars keeping a previous one.
    expect(refused.output()).not.toContain('sidecars keep the previous one');
    expect(readFileSync(file, 'utf8')).toBe(corrupted);
  }, 60_000);

  it('refuses hand-corrupted token and canary entries, naming every key, and changes nothing', async () => {
    const cp = await startControlPlane(procs);
    await cp.api.post('/api/v1/tokens', { service: 'catalog', ttl: '1h' });
    await cp.api.put('/api/v1/services/catalog/policy', { subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } } });
    await startedRollout(cp, 'catalog');
    cp.child.kill('SIGTERM');
    expect((await cp.child.exited).code).toBe(0);
    const file = join(cp.dataDir, 'store.json');
    const stored = JSON.parse(readFileSync(file, 'utf8')) as { entries: Record<string, { value: Record<string, unknown> }> };
    const tokenKey = Object.keys(stored.entries).find((key) => key.startsWith('tokens/'))!;
    stored.entries[tokenKey]!.value.revoked = 'no';
    stored.entries['canaries/catalog']!.value.status = 'paused';
    writeFileSync(file, JSON.stringify(stored));
    const corrupted = readFileSync(file, 'utf8');

    const refused = await refusedStart('corrupted tokens and canaries', cp.dataDir);
    expect(refused.code).toBe(1);
    expect(refused.output()).toContain(
      `skein: invalid config in the store (${file}), refusing to start: ${tokenKey}: revoked: Expected boolean, received string; ` +
        "canaries/catalog: status: Invalid enum value. Expected 'running' | 'succeeded' | 'rolled-back' | 'aborted', received 'paused'; " +
        'fix or delete these entries there (nothing was changed)',
    );
    expect(readFileSync(file, 'utf8')).toBe(corrupted);
  }, 60_000);

  it('after an upgrade, names every refused entry of every kind in one start; a finished rollout only warns', async () => {
    const cp = await startControlPlane(procs);
    await cp.api.post('/api/v1/tokens', { service: 'catalog', ttl: '1h' });
    const subsets = { subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } } };
    await cp.api.put('/api/v1/services/catalog/policy', subsets);
    await cp.api.put('/api/v1/services/orders/policy', { ...subsets, timeout: '2s' });
    await startedRollout(cp, 'catalog');
    cp.child.kill('SIGTERM');
    expect((await cp.child.exited).code).toBe(0);
    const file = join(cp.dataDir, 'store.json');
    const stored = JSON.parse(readFileSync(file, 'utf8')) as { entries: Record<string, { value: Record<string, unknown>; revision: number }> };
    const tokenKey = Object.keys(stored.entries).find((key) => key.startsWith('tokens/'))!;
    // As written by an older version without the 24h cap.
    stored.entries['policies/orders']!.value.timeout = '25h';
    stored.entries[tokenKey]!.value.revoked = 'no';
    const running = stored.entries['canaries/catalog']!;
    (running.value.spec as Record<string, unknown>).interval = 25 * 3_600_000;
    const finished = structuredClone(running);
    Object.assign(finished.value, { service: 'orders', status: 'succeeded', endedAt: finished.value.updatedAt });
    stored.entries['canaries/orders'] = finished;
    writeFileSync(file, JSON.stringify(stored));
    const upgraded = readFileSync(file, 'utf8');

    const refused = await refusedStart('refused stored entries', cp.dataDir);
    expect(refused.code).toBe(1);
    expect(refused.output()).toContain(
      `skein: invalid config in the store (${file}), refusing to start: policies/orders: timeout: must be at most 24h, not 25h; ` +
        `${tokenKey}: revoked: Expected boolean, received string; ` +
        'canaries/catalog: spec.interval: must be at most 24h, not 25h; ' +
        'fix or delete these entries there (nothing was changed)',
    );
    expect(refused.output()).not.toContain('sidecars keep the previous one');
    expect(readFileSync(file, 'utf8')).toBe(upgraded);

    // Fixed as the message says; the finished rollout of orders, still over the cap, is skipped with a warning.
    stored.entries['policies/orders']!.value.timeout = '2s';
    stored.entries[tokenKey]!.value.revoked = false;
    delete stored.entries['canaries/catalog'];
    writeFileSync(file, JSON.stringify(stored));
    const restarted = await startControlPlane(procs, { dataDir: cp.dataDir });
    expect((await restarted.api.get('/api/v1/services/orders/policy')).body).toMatchObject({ timeout: '2s' });
    expect(restarted.child.output()).toContain('skipping the finished canary rollout stored at canaries/orders');
    expect(JSON.parse(readFileSync(file, 'utf8')).entries['canaries/orders']).toBeDefined();
  }, 60_000);
});
