/**
 * `SKEIN_OTLP_ENDPOINT` is checked when the sidecar starts: a value that is no http(s) URL is
 * a usage error naming the variable. Before, such a sidecar started and served, and its first
 * span export (a second after its first request) threw from a timer and ended the process.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Processes, tempDir, waitUntil, writeConfigFile } from '../support/index.js';

const procs = new Processes();
afterEach(() => procs.killAll());

describe('SKEIN_OTLP_ENDPOINT', () => {
  it('refuses to start on one that is no http(s) URL (exit 2, naming the variable), before serving anything', async () => {
    const config = writeConfigFile(join(tempDir(), 'c.json'), {});
    for (const endpoint of ['localhost:4318', 'not a url', 'ftp://collector:4318', 'http://collector:4318/?tenant=a']) {
      const sidecar = await procs.sidecar({ service: 'web', appPort: 1, config, waitFor: 'none', env: { SKEIN_OTLP_ENDPOINT: endpoint } });
      // Whichever comes first: the exit, or a sidecar that started anyway and answers /live.
      const outcome = await waitUntil(async () => (sidecar.hasExited ? 'exited' : (await fetch(`${sidecar.adminUrl}/live`).catch(() => undefined))?.ok && 'serving'), {
        timeoutMs: 30_000,
        what: `the sidecar with SKEIN_OTLP_ENDPOINT=${endpoint} to exit or serve`,
      });
      expect(outcome, sidecar.output()).toBe('exited');
      expect((await sidecar.exited).code, sidecar.output()).toBe(2);
      expect(sidecar.output()).toContain(`skein: SKEIN_OTLP_ENDPOINT=${endpoint}: ${JSON.stringify(endpoint)} `);
    }
  });
});
