/**
 * A static-mode sidecar whose config file is deleted keeps routing with the snapshot in force
 * and counts one NACK for it (an alert on NACKs sees a config that disappeared), however many
 * times it looks at the missing file; the file put back valid is an ACK.
 */
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { echoHandler, Processes, startUpstream, tempDir, waitUntil, writeConfigFile, type TestUpstream } from '../support/index.js';
import { metric, scrape, send } from './resilience-fixture.js';

describe('a deleted config file', () => {
  const procs = new Processes();
  const upstreams: TestUpstream[] = [];

  afterAll(async () => {
    await procs.killAll();
    await Promise.all(upstreams.map((u) => u.close()));
  });

  it('is one nack while it stays deleted, and the file put back is an ack', async () => {
    const shop = await startUpstream(echoHandler('shop'));
    const app = await startUpstream(echoHandler('app'));
    upstreams.push(shop, app);
    const dir = tempDir();
    const path = join(dir, 'skein.yaml');
    const config = (version: string) => `version: "${version}"\nservices:\n  shop:\n    endpoints: [{ address: 127.0.0.1, port: ${shop.port}, labels: { version: v1 } }]\n`;
    writeConfigFile(path, config('1'));
    const sc = await procs.sidecar({ service: 'client', appPort: app.port, config: path });
    const updates = async () => {
      const s = await scrape(sc);
      return { ack: metric(s, 'skein_config_updates_total', { result: 'ack' }), nack: metric(s, 'skein_config_updates_total', { result: 'nack' }) };
    };
    const before = await updates();

    rmSync(path);
    await waitUntil(() => sc.output().includes('cannot read'), { what: 'the deleted file to be seen' });
    expect(await updates()).toEqual({ ack: before.ack, nack: before.nack + 1 });
    const res = await send(`${sc.outboundUrl}/items`, { headers: { host: 'shop' } });
    expect(res.status, res.body).toBe(200);

    // Each write in the directory is an event: the sidecar looks at the still-missing file
    // again before the rename puts it back, and counts nothing for those looks.
    const staged = join(dir, '.skein.yaml.new');
    writeFileSync(staged, config('2'));
    renameSync(staged, path);
    await waitUntil(async () => (await updates()).ack > before.ack, { what: 'the file put back to be applied' });
    expect(await updates()).toEqual({ ack: before.ack + 1, nack: before.nack + 1 });
    expect(sc.output().match(/cannot read/g)).toHaveLength(1);
  });
});
