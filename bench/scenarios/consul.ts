/**
 * Discovery through Consul: how long an instance's deregistration takes to leave the endpoint
 * sets of 50 watching sidecars (p50/p99 over every watcher and round), and how many requests
 * per second each watching sidecar sends Consul when nothing changes. The 50 sidecars'
 * Consul parts run in this process: each is the sidecar's own ConsulEndpointSource (one
 * blocking query on the target service) and ConsulRegistration (the registration keeper's
 * hash query), on its own connection, against one real `consul agent -dev`.
 */
import { createServer } from 'node:http';
import { blockingQueryStats } from '../../common/consul/blocking-query.js';
import { connectConsul, type ConsulConnection } from '../../common/consul/client.js';
import { createLogger } from '../../common/log.js';
import { ConsulEndpointSource } from '../../sidecar/discovery/consul.js';
import { ConsulRegistration } from '../../sidecar/discovery/consul-registration.js';
import { startConsul } from '../../test/support/consul.js';
import { waitUntil } from '../../test/support/wait.js';
import { describeMachine, machineInfo } from '../lib/machine.js';
import { markdownTable } from '../lib/markdown.js';
import type { Scenario, ScenarioContext, ScenarioResult } from '../scenario.js';

const WATCHERS = Number(process.env.BENCH_CONSUL_WATCHERS ?? 50);
const INSTANCES = 5;
const ROUNDS = Number(process.env.BENCH_CONSUL_ROUNDS ?? 20);
/** Longer than the 60 s blocking wait, so the idle rate counts the re-asks it causes. */
const IDLE_SECONDS = Number(process.env.BENCH_CONSUL_IDLE_SECONDS ?? 130);

export const scenario: Scenario = {
  name: 'consul',
  description: `convergence from a deregistration to its removal in ${WATCHERS} watching sidecars (p50/p99), Consul requests per watching sidecar when idle`,
  run: runConsul,
};

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function runConsul(ctx: ScenarioContext): Promise<ScenarioResult> {
  const agent = await startConsul();
  const logger = createLogger('bench', 'error');
  const ready = createServer((_req, res) => res.end('ready'));
  await new Promise<void>((resolve) => ready.listen(0, '127.0.0.1', resolve));
  const readyPort = (ready.address() as { port: number }).port;
  const connections: ConsulConnection[] = [];
  const sources: ConsulEndpointSource[] = [];
  const registrations: ConsulRegistration[] = [];
  try {
    const admin = connectConsul(agent.url);
    connections.push(admin);
    const register = (i: number) => agent.put('/agent/service/register', { ID: `target-${i}`, Name: 'bench-target', Address: '127.0.0.1', Port: 20_000 + i, Meta: { version: 'v1' } });
    for (let i = 0; i < INSTANCES; i++) await register(i);

    // Per watcher: the last time its set changed and the ports in it.
    const seen = Array.from({ length: WATCHERS }, () => ({ at: 0, ports: new Set<number>() }));
    for (let w = 0; w < WATCHERS; w++) {
      const consul = connectConsul(agent.url);
      connections.push(consul);
      const source = new ConsulEndpointSource(consul, logger);
      sources.push(source);
      source.watch('bench-target', (endpoints) => {
        seen[w] = { at: performance.now(), ports: new Set(endpoints.map((e) => e.port)) };
      });
      registrations.push(new ConsulRegistration(consul, {
        id: `bench-web-${w}`, service: 'bench-web', version: 'v1', protocol: 'http', address: '127.0.0.1', port: 30_000 + w, checkUrl: `http://127.0.0.1:${readyPort}/ready`,
      }, logger));
    }
    await waitUntil(() => seen.every((s) => s.ports.size === INSTANCES), { timeoutMs: 30_000, what: 'every watcher to see every instance' });
    await waitUntil(async () => (await agent.passing('bench-web')).length === WATCHERS, { timeoutMs: 30_000, what: 'every watcher registered' });
    ctx.log(`${WATCHERS} watchers ready`);

    const latencies: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const victim = round % INSTANCES;
      const port = 20_000 + victim;
      const start = performance.now();
      await agent.put(`/agent/service/deregister/target-${victim}`);
      await waitUntil(() => seen.every((s) => !s.ports.has(port)), { timeoutMs: 10_000, intervalMs: 5, what: `target-${victim} gone from every watcher` });
      for (const s of seen) latencies.push(s.at - start);
      await register(victim);
      await waitUntil(() => seen.every((s) => s.ports.has(port)), { timeoutMs: 10_000, intervalMs: 5, what: `target-${victim} back in every watcher` });
    }
    latencies.sort((a, b) => a - b);

    // Idle: nothing changes; count every request the watchers and keepers send.
    const before = blockingQueryStats.requests;
    ctx.log(`idle window of ${IDLE_SECONDS} s`);
    await new Promise((resolve) => setTimeout(resolve, IDLE_SECONDS * 1000));
    const idleRate = (blockingQueryStats.requests - before) / IDLE_SECONDS / WATCHERS;

    const figures = {
      p50Ms: Math.round(percentile(latencies, 50) * 10) / 10,
      p99Ms: Math.round(percentile(latencies, 99) * 10) / 10,
      maxMs: Math.round(latencies.at(-1)! * 10) / 10,
      idlePerSidecar: Math.round(idleRate * 1000) / 1000,
    };
    const markdown =
      markdownTable(
        ['watching sidecars', 'deregistrations', 'p50', 'p99', 'max', 'Consul requests/s per sidecar, idle'],
        [[String(WATCHERS), String(ROUNDS), `${figures.p50Ms} ms`, `${figures.p99Ms} ms`, `${figures.maxMs} ms`, `${figures.idlePerSidecar} (over ${IDLE_SECONDS} s)`]],
      ) + `\n\n${describeMachine(machineInfo())}`;
    return { markdown, figures: { 'p50 ms': figures.p50Ms, 'p99 ms': figures.p99Ms, 'idle req/s per sidecar': figures.idlePerSidecar } };
  } finally {
    await Promise.all(sources.map((s) => s.close()));
    await Promise.all(registrations.map((r) => r.deregister(1_000)));
    for (const c of connections) c.close();
    ready.close();
    await agent.stop();
  }
}
