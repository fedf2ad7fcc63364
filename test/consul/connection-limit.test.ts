/**
 * An agent whose per-address connection limit (`limits { http_max_conns_per_client }`, 200 by
 * default) is below what the sidecars on its host hold: each blocking query is one parked
 * connection, so a static sidecar holds one per destination of its file plus its registration's. Consul answers
 * the extra ones 429; the log must say which limit to raise, not only Consul's words.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Processes, waitUntil } from '../support/index.js';
import { startConsul, type ConsulAgent } from '../support/consul.js';
import { consulConfig, switchableApp, type SwitchableApp } from './fixture.js';

describe('Consul agent connection limit', { timeout: 60_000 }, () => {
  let consul: ConsulAgent;
  const procs = new Processes();
  let app: SwitchableApp | undefined;

  beforeAll(async () => {
    consul = await startConsul({ hcl: 'limits { http_max_conns_per_client = 6 }' });
  }, 60_000);
  afterAll(async () => {
    await procs.killAll();
    await app?.close();
    await consul?.stop();
  });

  it('a sidecar watching more destinations than the agent lets one address hold connections names the limit to raise', async () => {
    app = await switchableApp('a');
    const destinations = Array.from({ length: 8 }, (_, i) => `d${i}`);
    const sc = await procs.sidecar({ service: 'catalog', appPort: app.port, config: consulConfig(destinations), waitFor: '/live', extraArgs: ['--consul', consul.url] });
    const message = /watching d\d in Consul failed: Consul at http:\/\/127\.0\.0\.1:\d+ refuses more connections from this address \(429: [^)]*\): every watched service holds one \(a sidecar: one per destination it watches, which in control-plane mode is one its app has called, plus one for its registration; the control plane: at most 6 for its catalog, one for its KV store\); raise the agent's limits \{ http_max_conns_per_client \} \(default 200\)/;
    await waitUntil(() => message.test(sc.output()), { timeoutMs: 15_000, what: `the 429 explained in the sidecar's log:\n${sc.output()}` });
    expect(sc.hasExited).toBe(false);
  });
});
