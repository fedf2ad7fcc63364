/**
 * A static config file is written by an operator, so it is refused for an intention rule that
 * never decides (an earlier rule matches every call it would), as a write to the control
 * plane is: on real processes, a sidecar started on such a file exits 1 naming the rule, and
 * one whose file gains such a rule keeps the config in force, counts a NACK and logs why.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { SnapshotInput } from '../../common/config/schema.js';
import { echoHandler, Processes, startUpstream, tempDir, waitUntil, writeConfigFile, type TestUpstream } from '../support/index.js';
import { metric, scrape } from './resilience-fixture.js';

type Rule = NonNullable<NonNullable<SnapshotInput['intentions']>['rules']>[number];
const EXACT: Rule = { source: 'gateway', destination: 'orders', action: 'allow' };
const WILDCARD: Rule = { source: 'gateway', destination: '*', action: 'deny' };
const REFUSAL = 'intentions.rules[1]: never decides: rule 0 (gateway -> *) matches every call it would';

describe('a static config file with an intention rule that never decides', () => {
  const procs = new Processes();
  const upstreams: TestUpstream[] = [];
  afterAll(async () => {
    await procs.killAll();
    await Promise.all(upstreams.map((u) => u.close()));
  });

  async function app(): Promise<number> {
    const u = await startUpstream(echoHandler('app'));
    upstreams.push(u);
    return u.port;
  }

  it('stops a sidecar at start (exit 1, naming the file and the rule)', async () => {
    const path = writeConfigFile(join(tempDir(), 'skein.json'), { version: '1', intentions: { rules: [WILDCARD, EXACT] } });
    const sc = await procs.sidecar({ service: 'orders', appPort: await app(), config: path, waitFor: 'none' });
    const exit = await Promise.race([sc.exited, new Promise((resolve) => setTimeout(resolve, 10_000, 'still running'))]);
    expect(exit, sc.output()).toEqual({ code: 1, signal: null });
    expect(sc.output()).toContain(`config file ${path} rejected: ${REFUSAL}`);
  });

  it('is refused on reload: the config in force stays, a nack is counted and the log names the rule', async () => {
    const path = writeConfigFile(join(tempDir(), 'skein.json'), { version: '1', intentions: { rules: [EXACT, WILDCARD] } });
    const sc = await procs.sidecar({ service: 'orders', appPort: await app(), config: path });
    const nacks = async () => metric(await scrape(sc), 'skein_config_updates_total', { result: 'nack' });
    const before = await nacks();

    writeConfigFile(path, { version: '2', intentions: { rules: [WILDCARD, EXACT] } });
    await waitUntil(async () => (await nacks()) > before, { what: 'the sidecar to refuse the changed file' });
    const config = (await (await fetch(`${sc.adminUrl}/config`)).json()) as { version: string; snapshot: { intentions: { rules: Rule[] } } };
    expect(config.version).toBe('1');
    expect(config.snapshot.intentions.rules).toEqual([EXACT, WILDCARD]);
    expect(sc.output()).toContain(`rejected, keeping the config in force: ${REFUSAL}`);
  });
});
