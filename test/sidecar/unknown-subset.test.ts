/**
 * A static config file read without --consul holds every endpoint there is, so a split or
 * mirror naming a subset none of them has (a typo such as `V2`) could only fail at its
 * requests: it is refused as the control plane refuses it, with the same message. With
 * --consul the instances come from Consul and the file cannot know them, so it is taken. On
 * real processes: a sidecar started on such a file exits 1 saying it does not start, one
 * whose file gains such a rule keeps the config in force, and one with --consul starts.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { SnapshotInput } from '../../common/config/schema.js';
import { echoHandler, Processes, startScriptedConsulAgent, startUpstream, tempDir, waitUntil, writeConfigFile, type TestUpstream } from '../support/index.js';
import { metric, scrape } from './resilience-fixture.js';

const SPLIT_TYPO = 'routes.catalog[0].split.V2: unknown subset "V2" of catalog: not declared in its policy and no instance has version=V2';
const MIRROR = 'routes.catalog[0].mirror.subset: unknown subset "v3" of catalog: not declared in its policy and no instance has version=v3';

/** catalog's v1 and v2 endpoints at `ports` (one address and port is one endpoint: a static file may not list it twice). */
function snapshot(version: string, ports: readonly [number, number], rule: NonNullable<SnapshotInput['routes']>[string][number]): SnapshotInput {
  return {
    version,
    services: { catalog: { endpoints: [{ address: '127.0.0.1', port: ports[0], labels: { version: 'v1' } }, { address: '127.0.0.1', port: ports[1], labels: { version: 'v2' } }] } },
    routes: { catalog: [rule] },
  };
}
/** As the JSON log line holds `text`. */
const logged = (text: string): string => JSON.stringify(text).slice(1, -1);
const TYPO = { split: { v1: 90, V2: 10 }, mirror: { subset: 'v3', percent: 100 } };

describe('a static config file naming a subset no endpoint has', () => {
  const procs = new Processes();
  const upstreams: TestUpstream[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    await procs.killAll();
    await Promise.all([...upstreams.map((u) => u.close()), ...cleanups.map((c) => c())]);
  });

  async function apps(): Promise<[number, number]> {
    const u = [await startUpstream(echoHandler('v1')), await startUpstream(echoHandler('v2'))];
    upstreams.push(...u);
    return [u[0]!.port, u[1]!.port];
  }

  it('stops a sidecar at start (exit 1, naming each rule, saying it does not start)', async () => {
    const ports = await apps();
    const path = writeConfigFile(join(tempDir(), 'skein.json'), snapshot('1', ports, TYPO));
    const sc = await procs.sidecar({ service: 'web', appPort: ports[0], config: path, waitFor: 'none' });
    const exit = await Promise.race([sc.exited, new Promise((resolve) => setTimeout(resolve, 10_000, 'still running'))]);
    expect(exit, sc.output()).toEqual({ code: 1, signal: null });
    expect(sc.output()).toContain(logged(`config file ${path} rejected; not starting: ${SPLIT_TYPO}; ${MIRROR}`));
    expect(sc.output()).not.toContain('keeping the config in force');
  });

  it('is refused on reload: the config in force stays and the log names the rule', async () => {
    const ports = await apps();
    const path = writeConfigFile(join(tempDir(), 'skein.json'), snapshot('1', ports, { split: { v1: 90, v2: 10 } }));
    const sc = await procs.sidecar({ service: 'web', appPort: ports[0], config: path });
    const nacks = async () => metric(await scrape(sc), 'skein_config_updates_total', { result: 'nack' });
    const before = await nacks();

    writeConfigFile(path, snapshot('2', ports, TYPO));
    await waitUntil(async () => (await nacks()) > before, { what: 'the sidecar to refuse the changed file' });
    const config = (await (await fetch(`${sc.adminUrl}/config`)).json()) as { version: string };
    expect(config.version).toBe('1');
    expect(sc.output()).toContain(logged(`rejected, keeping the config in force: ${SPLIT_TYPO}; ${MIRROR}`));
  });

  it('is taken with --consul, whose instances the file cannot know', async () => {
    const consul = await startScriptedConsulAgent();
    cleanups.push(() => consul.close());
    const ports = await apps();
    const path = writeConfigFile(join(tempDir(), 'skein.json'), snapshot('1', ports, TYPO));
    const sc = await procs.sidecar({ service: 'web', appPort: ports[0], config: path, extraArgs: ['--consul', consul.url] });
    const config = (await (await fetch(`${sc.adminUrl}/config`)).json()) as { version: string };
    expect(config.version).toBe('1');
  });
});
