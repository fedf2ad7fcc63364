/**
 * A static-mode sidecar whose --config is mounted the way Kubernetes mounts a ConfigMap
 * (`mesh.yaml -> ..data/mesh.yaml`, `..data -> ..data1`) sees the update the kubelet makes
 * by swapping `..data` atomically to a new generation: `/config` reports the new version.
 */
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { echoHandler, Processes, startUpstream, tempDir, waitUntil, type TestUpstream } from '../support/index.js';

describe('a ConfigMap-mounted config file', () => {
  const procs = new Processes();
  const upstreams: TestUpstream[] = [];
  afterAll(async () => {
    await procs.killAll();
    await Promise.all(upstreams.map((u) => u.close()));
  });

  it('is reloaded when the ..data symlink is swapped', async () => {
    const app = await startUpstream(echoHandler('app'));
    upstreams.push(app);
    const cm = tempDir();
    for (const [gen, version] of [['..data1', '1'], ['..data2', '2']] as const) {
      mkdirSync(join(cm, gen));
      writeFileSync(join(cm, gen, 'mesh.yaml'), `version: "${version}"\nservices: {}\n`);
    }
    symlinkSync('..data1', join(cm, '..data'));
    symlinkSync('..data/mesh.yaml', join(cm, 'mesh.yaml'));
    const sc = await procs.sidecar({ service: 'client', appPort: app.port, config: join(cm, 'mesh.yaml') });
    const version = async () => ((await (await fetch(`${sc.adminUrl}/config`)).json()) as { version: string }).version;
    expect(await version()).toBe('1');

    symlinkSync('..data2', join(cm, '..data.tmp'));
    renameSync(join(cm, '..data.tmp'), join(cm, '..data'));
    await waitUntil(async () => (await version()) === '2', { what: '/config to report version 2', timeoutMs: 10_000 });
    expect(sc.output()).toMatch(/"version":"2".*config applied/);
  });
});
