/**
 * `skein demo`: starts the whole shop on this machine and stops it in order.
 *
 *   start: Consul (or the built-in registry) → control plane → mesh config (policies, the
 *          catalog split at v1=100 v2=0, intentions with default deny) → every instance's
 *          app and sidecar in parallel → the gateway answering end to end → load generator
 *   stop:  load generator → sidecars drain → apps → control plane → Consul
 *
 * Each step reports one progress line. The running demo is described in `demo.json` (state)
 * and `demo.pids` (every process started) in the data dir.
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { consulLeader, findConsulBinary, startConsul, type RunningConsul } from './consul.js';
import { ControlServer } from './control-server.js';
import { applyMeshConfig, bootstrapToken, discoveredHealthy, startControlPlane, type RunningControlPlane } from './control-plane.js';
import { Instance, type MeshAccess } from './instance.js';
import { DemoPaths, type DemoOptions } from './options.js';
import { loadGeneratorMain, packageRoot } from './package-root.js';
import { cleanLeftovers, PidFile } from './pid-file.js';
import { freePorts } from '../common/net/free-ports.js';
import { claimPort } from './ports.js';
import { ProcessSupervisor, type ManagedProcess } from './processes.js';
import { removeState, writeState, type DemoState } from './state.js';
import { INSTANCES } from './topology.js';
import { waitFor, withTimeout } from './wait.js';

export interface Reporter {
  /** A step that finished, one line. */
  step(text: string): void;
  /** Something the user should know that is not a failure (e.g. no Consul). */
  notice(text: string): void;
}

const INSTANCE_READY_MS = 60_000;
/** How long an agent given with --consul URL may take to answer. */
const CONSUL_AGENT_MS = 10_000;
/** However slow this machine, a start that takes longer than this has gone wrong. */
const START_MS = 150_000;
/** How long each stage of a stop may take before its processes are killed. */
const STOP_GRACE_MS = 8_000;
/** The whole ordered stop (six stages of at most STOP_GRACE_MS each, usually a few seconds in all). */
const STOP_MS = 60_000;

export class DemoAlreadyRunningError extends Error {
  override name = 'DemoAlreadyRunningError';
}

export class Demo {
  readonly paths: DemoPaths;
  private readonly supervisor: ProcessSupervisor;
  private readonly pidFile: PidFile;
  private readonly pids: number[] = [process.pid];
  private readonly instances = new Map<string, Instance>();
  private consul: RunningConsul | undefined;
  private controlPlane: RunningControlPlane | undefined;
  private control: ControlServer | undefined;
  private load: ManagedProcess | undefined;
  /** Set when the control plane and sidecars use Consul. */
  private consulUrl: string | undefined;
  private gatewayPort = 0;
  private stopping: Promise<void> | undefined;
  /** The start has finished. */
  private up = false;
  private readonly began = performance.now();
  /** What to do on POST /stop at the control endpoint. */
  onStopRequested: () => void = () => void this.stop();

  constructor(
    readonly options: DemoOptions,
    private readonly reporter: Reporter,
  ) {
    this.paths = new DemoPaths(options.dataDir);
    this.pidFile = new PidFile(this.paths.pidFile);
    this.supervisor = new ProcessSupervisor({
      onStart: (proc) => {
        this.pids.push(proc.pid);
        this.pidFile.add(proc.pid, proc.name);
        if (this.control) this.saveState();
      },
      onUnexpectedExit: (proc) => {
        // While starting, the step waiting on it reports the failure; afterwards nobody would.
        if (this.up) reporter.notice(proc.describeExit());
        if (this.control) this.saveState();
      },
    });
  }

  /** Starts everything; on failure stops what did start and rethrows. */
  async start(): Promise<void> {
    const { paths, reporter } = this;
    mkdirSync(paths.root, { recursive: true });
    const leftovers = await cleanLeftovers(this.pidFile, paths.root);
    if (leftovers.runningDemo) {
      throw new DemoAlreadyRunningError(`a demo is already running on ${paths.root} (pid ${leftovers.runningDemo}); stop it first (Ctrl-C in its terminal, or npx skein demo stop)`);
    }
    if (leftovers.killed.length) reporter.notice(`stopped ${leftovers.killed.length} processes left behind by a demo that did not stop cleanly`);
    if (this.options.fresh) {
      const foreign = foreignEntries(paths.root);
      if (foreign.length > 0) {
        throw new Error(`--fresh deletes the data dir, and ${paths.root} holds what the demo did not make (${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', …' : ''}): choose another --data-dir, or empty it yourself`);
      }
      rmSync(paths.root, { recursive: true, force: true });
      mkdirSync(paths.root, { recursive: true });
    }
    mkdirSync(paths.logs, { recursive: true });
    this.pidFile.begin();
    try {
      await withTimeout(this.run(), START_MS, 'the demo to start');
    } catch (err) {
      await this.stop({ quiet: true });
      throw err;
    }
  }

  private elapsed(): string {
    return `${((performance.now() - this.began) / 1000).toFixed(1).padStart(5)} s`;
  }

  private step(text: string): void {
    this.reporter.step(`[${this.elapsed()}] ${text}`);
  }

  private async run(): Promise<void> {
    const { options, paths } = this;
    this.gatewayPort = await claimPort(options.gatewayPort, 'gateway', '--gateway-port');
    const adminPort = await claimPort(options.controlPlanePort, 'control plane admin API and dashboard', '--control-plane-port');
    this.reporter.step(`data and logs in ${paths.root} (logs/*.log)`);
    await this.placeInstances();

    // The apps need nothing from the mesh to start, so they boot while the control plane does.
    const apps = this.startApps();
    await this.startControlPlane(adminPort);
    const cp = this.controlPlane!;
    await applyMeshConfig(cp.api);
    this.step('mesh config: catalog split v1=100 v2=0, payments ring-hash on Idempotency-Key and circuit breaker, intentions (default deny, 8 allowed calls)');

    this.control = new ControlServer(this, cp.adminToken);
    this.control.onStopRequested = () => this.onStopRequested();
    await this.control.listen();
    await Promise.all([apps, this.startSidecars()]);
    await this.waitForShop();
    if (options.loadRate > 0) await this.startLoad();
    this.saveState();
    this.up = true;
  }

  /**
   * The control plane with Consul when asked for or when a consul binary is at hand (agent
   * and control plane start side by side; the control plane waits for its agent), otherwise
   * with its built-in registry.
   */
  private async startControlPlane(httpPort: number): Promise<void> {
    const choice = this.options.consul;
    let consulUrl: string | undefined;
    if (choice === 'off') {
      this.step('registry: the control plane\'s built-in registry (--consul off)');
    } else if (typeof choice === 'object') {
      consulUrl = choice.url;
      // Checked before anything depends on it: otherwise every sidecar waits a minute on it.
      await consulLeader(consulUrl, { timeoutMs: CONSUL_AGENT_MS, what: `the Consul agent at ${consulUrl} (--consul) to answer with a leader` });
    } else {
      const binary = await findConsulBinary(packageRoot);
      if (binary.path) {
        this.consul = await startConsul(binary.path, this.supervisor, this.paths.log('consul'));
        consulUrl = this.consul.url;
      } else {
        this.reporter.notice(`no Consul: ${binary.reason}. Using the control plane's built-in registry (npm run consul:install builds Consul once, in a few minutes)`);
      }
    }
    this.controlPlane = await startControlPlane(this.supervisor, this.paths, { httpPort, consulUrl });
    if (this.consul) {
      await this.consul.ready;
      this.step(`Consul dev agent at ${this.consul.url}: services register there, sidecars and control plane watch it`);
    } else if (consulUrl) {
      this.step(`Consul agent at ${consulUrl}`);
    }
    this.consulUrl = consulUrl;
    const cp = this.controlPlane;
    this.step(`control plane: admin API and dashboard ${cp.adminUrl}, gRPC ${cp.grpcAddress}`);
  }

  private meshAccess(): MeshAccess {
    const cp = this.controlPlane!;
    return {
      grpcAddress: cp.grpcAddress,
      caFile: this.paths.caFile,
      consulUrl: this.consulUrl,
      token: (service) => bootstrapToken(cp.api, service),
    };
  }

  /** Gives every instance its ports (the gateway's app gets the public one). */
  private async placeInstances(): Promise<void> {
    const ports = await freePorts(INSTANCES.length * 4);
    for (const [n, spec] of INSTANCES.entries()) {
      const [app, inbound, outbound, admin] = ports.slice(n * 4, n * 4 + 4) as [number, number, number, number];
      this.instances.set(spec.id, new Instance(spec, { app: spec.public ? this.gatewayPort : app, inbound, outbound, admin }));
    }
  }

  private async startApps(): Promise<void> {
    const started = new Map<string, Promise<void>>();
    for (const instance of this.instances.values()) {
      const dependency = instance.spec.after ? this.instances.get(instance.spec.after)! : undefined;
      const after = dependency ? started.get(dependency.spec.id)!.then(() => dependency.appListening(INSTANCE_READY_MS)) : undefined;
      started.set(instance.spec.id, instance.startApp(this.supervisor, this.paths, after));
    }
    await Promise.all(started.values());
  }

  private async startSidecars(): Promise<void> {
    const mesh = this.meshAccess();
    await Promise.all(
      [...this.instances.values()].map(async (instance) => {
        await instance.startSidecar(this.supervisor, this.paths, mesh);
        await this.ready(instance);
        this.step(`${instance.spec.id.padEnd(14)} ${instance.spec.service} ${instance.spec.version}, app :${instance.ports.app}, sidecar inbound :${instance.ports.inbound} (mTLS) admin :${instance.ports.admin}`);
      }),
    );
  }

  /** Its sidecar is ready and discovery lists it as healthy, so callers will find it. */
  private async ready(instance: Instance): Promise<void> {
    await instance.ready(INSTANCE_READY_MS);
    const { service, id } = instance.spec;
    const api = this.controlPlane!.api;
    await waitFor(() => discoveredHealthy(api, service, id), { timeoutMs: INSTANCE_READY_MS, what: `${id} to be discovered healthy (GET /api/v1/services/${service})`, watch: instance.processes(), intervalMs: 200 });
  }

  /** The shop answers through the whole mesh: gateway → its sidecar → catalog (gRPC) and inventory. */
  private async waitForShop(): Promise<void> {
    const url = `${this.gatewayUrl}/api/products`;
    const body = await waitFor(async () => {
      const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
      const json = (await res.json()) as { products?: { stock: number | null }[]; catalogVersion?: string };
      return res.status === 200 && json.products?.every((p) => p.stock !== null) ? json : undefined;
    }, { timeoutMs: 30_000, what: `${url} to list products with stock`, watch: this.supervisor.running });
    this.step(`shop answers: GET ${url} → ${body.products!.length} products from catalog ${body.catalogVersion}`);
  }

  private async startLoad(): Promise<void> {
    const inventory = this.instances.get('inventory')!;
    const load = this.supervisor.start('load', process.execPath, [
      loadGeneratorMain, '--demo', this.paths.root, '--gateway', this.gatewayUrl, '--inventory', `http://127.0.0.1:${inventory.ports.app}`, '--rate', String(this.options.loadRate),
    ], { logFile: this.paths.log('load') });
    this.load = load;
    await waitFor(() => /load: [\d.]+ req\/s to/.test(load.tail(3)), { timeoutMs: 15_000, what: 'the load generator to start', watch: [load] });
    this.step(`load generator: ${this.options.loadRate} req/s (60% browse, 30% view, 10% order), a summary every 5 s in logs/load.log`);
  }

  get gatewayUrl(): string {
    return `http://127.0.0.1:${this.gatewayPort}`;
  }

  instance(id: string): Instance {
    const found = this.instances.get(id);
    if (!found) throw new UnknownInstanceError(`no instance "${id}" (there are ${[...this.instances.keys()].join(', ')})`);
    return found;
  }

  /** Stops an instance: SIGTERM (its sidecar drains first), or SIGKILL to both at once (a crash). */
  async stopInstance(id: string, how: 'stop' | 'kill'): Promise<void> {
    const instance = this.instance(id);
    if (how === 'kill') {
      await Promise.all(instance.processes().map((p) => p.kill()));
    } else {
      await instance.sidecar?.stop(STOP_GRACE_MS);
      await instance.app?.stop(STOP_GRACE_MS);
    }
    this.saveState();
  }

  /** Starts a stopped instance again on the same ports, with a fresh bootstrap token. */
  async startInstance(id: string): Promise<void> {
    const instance = this.instance(id);
    if (instance.running) throw new InstanceRunningError(`${id} is running; stop it first`);
    await Promise.all([instance.startApp(this.supervisor, this.paths), instance.startSidecar(this.supervisor, this.paths, this.meshAccess())]);
    await this.ready(instance);
    this.saveState();
  }

  state(): DemoState {
    const cp = this.controlPlane!;
    return {
      pid: process.pid,
      startedAt: new Date(performance.timeOrigin + this.began).toISOString(),
      dataDir: this.paths.root,
      gatewayUrl: this.gatewayUrl,
      adminUrl: cp.adminUrl,
      dashboardUrl: `${cp.adminUrl}/`,
      adminToken: cp.adminToken,
      grpcAddress: cp.grpcAddress,
      controlUrl: this.control!.url,
      registry: this.consulUrl ? 'consul' : 'built-in',
      ...(this.consulUrl ? { consulUrl: this.consulUrl } : {}),
      loadRate: this.load ? this.options.loadRate : 0,
      instances: [...this.instances.values()].map((i) => ({
        id: i.spec.id,
        service: i.spec.service,
        version: i.spec.version,
        appPort: i.ports.app,
        inboundPort: i.ports.inbound,
        outboundPort: i.ports.outbound,
        adminPort: i.ports.admin,
        running: i.serving,
      })),
      pids: [...this.pids],
    };
  }

  private saveState(): void {
    writeState(this.paths.stateFile, this.state());
  }

  /** Stops everything in order; a second call waits for the first. */
  stop(options: { quiet?: boolean } = {}): Promise<void> {
    this.stopping ??= withTimeout(this.stopInOrder(options.quiet ? () => {} : (text) => this.reporter.step(text)), STOP_MS, 'the demo to stop').catch((err: Error) => {
      // Each stage has its own SIGKILL deadline, so this is a last resort that leaves nothing behind.
      this.reporter.notice(`${err.message}: killing every process now`);
      this.killNow();
      removeState(this.paths.stateFile);
    });
    return this.stopping;
  }

  /** Skips the order: SIGKILL to every process group now (a second Ctrl-C, or the orchestrator failing). */
  killNow(): void {
    this.supervisor.killAllNow();
  }

  private async stopInOrder(say: (text: string) => void): Promise<void> {
    // Nothing new starts once a stop has begun (a Ctrl-C can come halfway through the start).
    this.supervisor.close();
    // `what` is told how many were still running: one that died on its own is not "stopped".
    const stage = async (what: (live: number) => string, procs: readonly (ManagedProcess | undefined)[]) => {
      const live = procs.filter((p): p is ManagedProcess => p !== undefined && p.running);
      if (live.length === 0) return;
      const started = performance.now();
      await Promise.all(live.map((p) => p.stop(STOP_GRACE_MS)));
      say(`stopped ${what(live.length)} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
    };
    const instances = [...this.instances.values()];
    await stage(() => 'load generator', [this.load]);
    await stage((n) => `${n} sidecars (drained)`, instances.map((i) => i.sidecar));
    await stage((n) => `${n} services`, instances.map((i) => i.app));
    await stage(() => 'control plane', [this.controlPlane?.process]);
    await stage(() => 'Consul', [this.consul?.process]);
    // Whatever else was started (e.g. a process whose start failed halfway) goes too.
    await stage((n) => `${n} remaining processes`, this.supervisor.running);
    await this.control?.close();
    removeState(this.paths.stateFile);
    // Every process has exited: nothing is left for the next start to clean up.
    this.pidFile.remove();
  }
}

/** What the demo makes in its data dir: the control plane's, logs, databases, state. */
const DEMO_ENTRY = /^(control-plane|logs|notifications\.log|demo\.(json|pids)(\..+)?|[a-z0-9-]+\.db(-wal|-shm|-journal)?)$/;

/**
 * Entries of `dir` the demo would not have made, which --fresh must not delete with the
 * rest (`--data-dir .` in a project, or a home directory).
 */
export function foreignEntries(dir: string): string[] {
  try {
    return readdirSync(dir).filter((name) => !DEMO_ENTRY.test(name));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

export class UnknownInstanceError extends Error {
  override name = 'UnknownInstanceError';
}

export class InstanceRunningError extends Error {
  override name = 'InstanceRunningError';
}
