import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { controlPlaneAdminToken } from './control-plane.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A control plane's data dir as it leaves it once up: its admin-token file, newline-terminated. */
function controlPlaneDir(token: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'skein-demo-cp-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'admin-token'), `${token}\n`, { mode: 0o600 });
  return dir;
}

describe('the admin token the demo uses', () => {
  it('is the one the control plane took, whatever SKEIN_ADMIN_TOKEN holds', async () => {
    const dir = controlPlaneDir('from-the-file');
    expect(await controlPlaneAdminToken(dir, undefined)).toBe('from-the-file');
    expect(await controlPlaneAdminToken(dir, '')).toBe('from-the-file');
    // Blank: the control plane ignores it (and warns) and uses its file.
    expect(await controlPlaneAdminToken(dir, '   ')).toBe('from-the-file');
    // The control plane trims it (a Secret made from a file ends in a newline).
    expect(await controlPlaneAdminToken(dir, ' from-the-env\n')).toBe('from-the-env');
  });
});
