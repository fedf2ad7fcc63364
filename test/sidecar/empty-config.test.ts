/**
 * An empty config file is refused like any invalid one, never applied as a snapshot with
 * nothing in it: an editor's truncate-then-write, `cp` over the file, or a ConfigMap update
 * shows a sidecar an empty file for a moment. On real processes: a static-mode sidecar whose
 * file is truncated in place (and then left with only comments) keeps routing with its last
 * good snapshot and counts a NACK; one started on an empty file exits 1 saying so; and
 * `skein apply -f` of an empty file is a clear error.
 */
import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { echoHandler, Processes, startUpstream, tempDir, waitUntil, writeConfigFile, type TestUpstream } from '../support/index.js';
import { metric, scrape, send } from './resilience-fixture.js';

describe('an empty config file', () => {
  const procs = new Processes();
  const upstreams: TestUpstream[] = [];

  afterAll(async () => {
    await procs.killAll();
    await Promise.all(upstreams.map((u) => u.close()));
  });

  it('is refused on reload: the sidecar keeps routing with the snapshot in force, counts a nack and logs why', async () => {
    const shop = await startUpstream(echoHandler('shop'));
    const app = await startUpstream(echoHandler('app'));
    upstreams.push(shop, app);
    const path = join(tempDir(), 'skein.yaml');
    writeConfigFile(path, `version: "1"\nservices:\n  shop:\n    endpoints: [{ address: 127.0.0.1, port: ${shop.port}, labels: { version: v1 } }]\n`);
    const sc = await procs.sidecar({ service: 'client', appPort: app.port, config: path });
    const call = () => send(`${sc.outboundUrl}/items`, { headers: { host: 'shop' } });
    expect((await call()).status).toBe(200);
    const updates = async () => {
      const s = await scrape(sc);
      return { ack: metric(s, 'skein_config_updates_total', { result: 'ack' }), nack: metric(s, 'skein_config_updates_total', { result: 'nack' }) };
    };
    const before = await updates();

    for (const [i, change] of [() => truncateSync(path), () => writeFileSync(path, '# being rewritten\n\n   \n')].entries()) {
      change(); // in place, as a truncating writer leaves it
      const seen = await waitUntil(async () => {
        const now = await updates();
        return now.ack + now.nack > before.ack + before.nack + i && now;
      }, { what: 'the sidecar to read the changed file' });
      expect(seen).toEqual({ ack: before.ack, nack: before.nack + i + 1 });
      const res = await call();
      expect(res.status, res.body).toBe(200);
      expect(JSON.parse(res.body)).toMatchObject({ name: 'shop' });
      const config = await (await fetch(`${sc.adminUrl}/config`)).json() as { version: string; snapshot: { services: Record<string, unknown> } };
      expect(config.version).toBe('1');
      expect(Object.keys(config.snapshot.services)).toEqual(['shop']);
    }
    expect(sc.output()).toMatch(/rejected, keeping the config in force: config: empty/);
  });

  it('stops a sidecar at start (exit 1, naming the file)', async () => {
    const app = await startUpstream(echoHandler('app'));
    upstreams.push(app);
    const path = join(tempDir(), 'skein.yaml');
    writeFileSync(path, '\n# nothing yet\n');
    const sc = await procs.sidecar({ service: 'client', appPort: app.port, config: path, waitFor: 'none' });
    const exit = await Promise.race([sc.exited, new Promise((resolve) => setTimeout(resolve, 10_000, 'still running'))]);
    expect(exit, sc.output()).toEqual({ code: 1, signal: null });
    expect(sc.output()).toContain(`config file ${path} rejected: config: empty`);
    // Logged as a start-up refusal: there is no config in force to keep.
    expect(sc.output()).toContain(`config file ${path} rejected; not starting: config: empty`);
    expect(sc.output()).not.toContain('keeping the config in force');
  });

  it('is a clear error for skein apply -f, before anything is sent', async () => {
    const dir = tempDir();
    const empty = join(dir, 'empty.yaml');
    writeFileSync(empty, '  \n');
    // Nothing listens there: the file is refused before the admin API is called.
    const env = { SKEIN_ADMIN_URL: 'http://127.0.0.1:9', SKEIN_ADMIN_TOKEN: 'unused' };
    const apply = procs.skein('apply', ['apply', '-f', empty], env);
    expect(await apply.exited).toEqual({ code: 1, signal: null });
    expect(apply.output()).toBe(`skein: ${empty} is empty (no YAML or JSON document in it): nothing to apply\n`);
    const nothing = join(dir, 'nothing.yaml');
    writeFileSync(nothing, 'version: "3"\n');
    const second = procs.skein('apply', ['apply', '-f', nothing], env);
    expect(await second.exited).toEqual({ code: 1, signal: null });
    expect(second.output()).toBe(`skein: ${nothing} has nothing to apply: expected services, routes or intentions\n`);
  });
});
