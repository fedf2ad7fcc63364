/**
 * Pieces shared by the Consul end-to-end tests: an app whose health can be switched off (it
 * keeps answering other paths), static configs for `--consul` sidecars, a steady load loop
 * that records every answer, and a proxy in front of the agent recording what a sidecar asks it.
 */
import { request as httpRequest, type ServerResponse } from 'node:http';
import { request, type Agent } from 'undici';
import { afterAll, afterEach } from 'vitest';
import type { ServicePolicyInput, SnapshotInput } from '../../common/config/schema.js';
import type { ConsulAgent } from '../support/consul.js';
import { startUpstream, tempDir, writeTempConfig, type Processes, type TestUpstream } from '../support/index.js';

export interface SwitchableApp extends TestUpstream {
  healthy: boolean;
  /** Requests answered other than /health. */
  served: number;
}

export async function switchableApp(name: string): Promise<SwitchableApp> {
  const state = { healthy: true, served: 0 };
  const upstream = await startUpstream((req, res: ServerResponse) => {
    if (req.url === '/health') {
      res.writeHead(state.healthy ? 200 : 500).end(state.healthy ? 'ok' : 'unhealthy');
      return;
    }
    state.served++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ name }));
  });
  // defineProperties, not Object.assign, which would copy the getters' current values.
  return Object.defineProperties(upstream, {
    healthy: { get: () => state.healthy, set: (v: boolean) => (state.healthy = v) },
    served: { get: () => state.served },
  }) as SwitchableApp;
}

/**
 * A static config naming `destinations` with the retry policy the no-failed-request tests rely
 * on; `subsets` and `routes`, when given, apply to every destination.
 */
export function consulConfig(
  destinations: readonly string[],
  routing: { subsets?: ServicePolicyInput['subsets']; routes?: SnapshotInput['routes'] } = {},
): string {
  const services: NonNullable<SnapshotInput['services']> = {};
  for (const name of destinations) {
    services[name] = {
      subsets: routing.subsets,
      lb: 'round-robin',
      retries: { attempts: 3, perTryTimeout: '1s', on: ['connect-failure', 'reset', 'gateway-error'], backoff: { base: '10ms', max: '50ms' }, budget: { ratio: 1, minPerSecond: 100 } },
      outlierDetection: { consecutiveErrors: 2, baseEjectionTime: '5s', maxEjectionPercent: 50 },
    };
  }
  return writeTempConfig({ version: '1', services, routes: routing.routes }, tempDir());
}

export interface Answer {
  readonly status: number;
  readonly name?: string;
  readonly reason?: string;
  /** Which loop sent it, and when (ms): answers to requests sent before a change can arrive after it. */
  readonly loop: number;
  readonly sentAt: number;
}

export interface Load {
  readonly answers: Answer[];
  failures(): Answer[];
  /** Answers to requests sent after `t`. */
  sentAfter(t: number): Answer[];
  /** True once every loop has an answer to a request sent after `t`: nothing sent before `t` is still in flight. */
  settledSince(t: number): boolean;
  stop(): Promise<void>;
}

/** `concurrency` loops of GET requests to `url` with Host `host`, until stopped. */
/** `paceMs`: a pause after each answer, for load that leaves a 2-core machine room for the processes under test. */
export function startLoad(agent: Agent, url: string, host: string, concurrency = 2, paceMs = 0): Load {
  const answers: Answer[] = [];
  let running = true;
  const loop = async (_: unknown, loop: number): Promise<void> => {
    while (running) {
      const sentAt = Date.now();
      try {
        const res = await request(`${url}/item`, { dispatcher: agent, headers: { host } });
        const text = await res.body.text();
        const reason = res.headers['x-skein-reason'] as string | undefined;
        answers.push({ status: res.statusCode, reason, name: res.statusCode === 200 ? (JSON.parse(text) as { name: string }).name : undefined, loop, sentAt });
        if (paceMs > 0) await new Promise((resolve) => setTimeout(resolve, paceMs));
      } catch (err) {
        answers.push({ status: 0, reason: (err as Error).message, loop, sentAt });
        // A closed dispatcher throws synchronously: yield so a failing loop cannot starve the event loop.
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
  };
  const loops = Array.from({ length: concurrency }, loop);
  const sentAfter = (t: number): Answer[] => answers.filter((a) => a.sentAt > t);
  return {
    answers,
    failures: () => answers.filter((a) => a.status !== 200),
    sentAfter,
    settledSince: (t) => new Set(sentAfter(t).map((a) => a.loop)).size === concurrency,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

export interface RecordingAgentProxy extends TestUpstream {
  /**
   * Holds the requests whose url `matches`, from now until `release()`: a blocking query held
   * so reaches the agent only after the writes the test makes meanwhile, and its answer then
   * shows them all at once (two writes between two answers).
   */
  hold(matches: (url: string) => boolean): { held(): number; release(): void };
}

/**
 * A plain HTTP proxy in front of `agent`: a sidecar given its url as `--consul` talks to the
 * real agent, and `requests` holds every call it made (`url` with the query string), so a test
 * counts one sidecar's queries, which the agent itself cannot tell apart from its neighbours'.
 * A caller that hangs up ends the forwarded request too, as a parked query's connection.
 */
export async function recordingAgentProxy(agent: ConsulAgent): Promise<RecordingAgentProxy> {
  let gate: { matches: (url: string) => boolean; held: (() => void)[] } | undefined;
  const upstream = await startUpstream((req, res) => {
    const forward = (): void => {
      const forwarded = httpRequest({ host: '127.0.0.1', port: agent.httpPort, method: req.method, path: req.url, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(res);
      });
      forwarded.on('error', () => res.destroy());
      res.on('close', () => forwarded.destroy());
      req.pipe(forwarded);
    };
    if (gate?.matches(req.url ?? '')) gate.held.push(forward);
    else forward();
  });
  return Object.assign(upstream, {
    hold(matches: (url: string) => boolean) {
      const held: (() => void)[] = [];
      gate = { matches, held };
      return {
        held: () => held.length,
        release() {
          gate = undefined;
          for (const forward of held.splice(0)) forward();
        },
      };
    },
  });
}

/** The services whose health `requests` (a recordingAgentProxy's) asked about, sorted, each once. */
export function healthQueried(requests: readonly { readonly url: string }[]): string[] {
  const names = requests.map((r) => /^\/v1\/health\/service\/([^?]+)/.exec(r.url)?.[1]).filter((n): n is string => n !== undefined);
  return [...new Set(names)].sort();
}

/**
 * The hooks of a describe block that shares one agent: after each test its sidecars and apps
 * end and the agent forgets their services; after the block the agent stops.
 */
export function consulTeardown(procs: Processes, apps: SwitchableApp[], consul: () => ConsulAgent | undefined): void {
  afterEach(async () => {
    await procs.killAll();
    for (const app of apps.splice(0)) await app.close();
    await consul()?.restartIfDown();
    await consul()?.reset();
  });
  afterAll(async () => {
    await consul()?.stop();
  });
}
