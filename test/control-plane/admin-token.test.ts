/**
 * Where the admin token comes from (SPEC §5): without SKEIN_ADMIN_TOKEN a real control
 * plane generates one into `<data-dir>/admin-token` (mode 0600) on first start and prints
 * it once; later starts reuse the file silently; SKEIN_ADMIN_TOKEN, when set, wins.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Processes, tempDir, waitUntil } from '../support/index.js';
import { startControlPlane, type ControlPlaneProcess } from './harness.js';

const procs = new Processes();
afterAll(() => procs.killAll());

/** The status of an authenticated write (a policy PUT) made with `token`. */
async function writeWith(cp: ControlPlaneProcess, token: string): Promise<number> {
  const res = await fetch(`${cp.adminUrl}/api/v1/services/orders/policy`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ timeout: '2s' }),
  });
  await res.arrayBuffer();
  return res.status;
}

async function stop(cp: ControlPlaneProcess): Promise<void> {
  cp.child.kill('SIGTERM');
  expect((await cp.child.exited).code).toBe(0);
}

describe('admin token', () => {
  it('is generated into the data dir and printed once, reused after a restart, and overridden by SKEIN_ADMIN_TOKEN', async () => {
    const dataDir = tempDir('skein-cp-');
    const first = await startControlPlane(procs, { dataDir, adminToken: '' });
    const file = join(dataDir, 'admin-token');
    const token = readFileSync(file, 'utf8').trim();
    expect(token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    await waitUntil(() => first.child.output().includes(token), { what: 'the generated token in the output' });
    expect(first.child.output()).toMatch(/generated the admin token \(saved in .*admin-token, shown only now\)/);
    expect(await writeWith(first, token)).toBe(200);
    expect(await writeWith(first, `${token}x`)).toBe(401);
    await stop(first);

    const second = await startControlPlane(procs, { dataDir, adminToken: '' });
    expect(await writeWith(second, token)).toBe(200);
    expect(second.child.output()).not.toContain(token);
    expect(readFileSync(file, 'utf8').trim()).toBe(token);
    await stop(second);

    const third = await startControlPlane(procs, { dataDir, adminToken: 'from-the-environment' });
    expect(await writeWith(third, 'from-the-environment')).toBe(200);
    expect(await writeWith(third, token)).toBe(401);
  });

  it('replaces an empty or blank admin-token file with a generated token instead of hanging', async () => {
    const dataDir = tempDir('skein-cp-');
    const file = join(dataDir, 'admin-token');
    writeFileSync(file, ' \n', { mode: 0o644 });
    const cp = await startControlPlane(procs, { dataDir, adminToken: '' });
    const token = readFileSync(file, 'utf8').trim();
    expect(token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    await waitUntil(() => cp.child.output().includes(token), { what: 'the generated token in the output' });
    expect(cp.child.output()).toContain(`saved in ${file}, replacing the empty file, shown only now`);
    expect(await writeWith(cp, token)).toBe(200);
  });

  it('trims SKEIN_ADMIN_TOKEN (a Secret made from a file ends in a newline); a blank one counts as unset, with a warning', async () => {
    const withNewline = await startControlPlane(procs, { adminToken: 'secret123\n' });
    expect(await writeWith(withNewline, 'secret123')).toBe(200);
    expect(await writeWith(withNewline, 'secret123x')).toBe(401);
    await stop(withNewline);

    const dataDir = tempDir('skein-cp-');
    const blank = await startControlPlane(procs, { dataDir, adminToken: '   ' });
    const file = join(dataDir, 'admin-token');
    const token = readFileSync(file, 'utf8').trim();
    expect(token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    await waitUntil(() => blank.child.output().includes(token), { what: 'the generated token in the output' });
    expect(blank.child.output()).toContain(`skein: SKEIN_ADMIN_TOKEN is set but blank: ignored, the admin token is the one in ${file}`);
    expect(await writeWith(blank, token)).toBe(200);
  });
});
