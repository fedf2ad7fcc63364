/**
 * One instance of a demo service: its app process and its own sidecar process. The app
 * reaches the mesh through the sidecar's outbound listener (SKEIN_OUTBOUND); the sidecar
 * gets its certificate and config from the control plane with a fresh bootstrap token.
 */
import { connect } from 'node:net';
import type { DemoPaths } from './options.js';
import { serviceRunner, skeinBin } from './package-root.js';
import type { ManagedProcess, ProcessSupervisor } from './processes.js';
import type { InstanceSpec } from './topology.js';
import { waitFor } from './wait.js';

/** Where every demo sidecar listens and registers: discovery names an instance `127.0.0.1:<inbound port>`. */
export const ADVERTISE_ADDRESS = '127.0.0.1';

export interface InstancePorts {
  readonly app: number;
  readonly inbound: number;
  readonly outbound: number;
  readonly admin: number;
}

export interface MeshAccess {
  readonly grpcAddress: string;
  readonly caFile: string;
  readonly consulUrl?: string;
  token(service: string): Promise<string>;
}

export class Instance {
  app: ManagedProcess | undefined;
  sidecar: ManagedProcess | undefined;

  constructor(
    readonly spec: InstanceSpec,
    readonly ports: InstancePorts,
  ) {}

  get adminUrl(): string {
    return `http://127.0.0.1:${this.ports.admin}`;
  }

  /** Some process of it still runs: starting it again would clash with that one's ports. */
  get running(): boolean {
    return Boolean(this.app?.running || this.sidecar?.running);
  }

  /** Both its app and its sidecar run: it can take traffic. */
  get serving(): boolean {
    return Boolean(this.app?.running && this.sidecar?.running);
  }

  /** Starts the app; `after` is what must happen first (another instance of its service being up). */
  async startApp(supervisor: ProcessSupervisor, paths: DemoPaths, after?: Promise<void>): Promise<void> {
    const { spec, ports } = this;
    await after;
    this.app = supervisor.start(spec.id, process.execPath, [
      serviceRunner, spec.service, '--port', String(ports.app), '--data-dir', paths.services, ...spec.appArgs,
    ], { logFile: paths.log(spec.id), env: { ...process.env, SKEIN_OUTBOUND: `http://127.0.0.1:${ports.outbound}` } });
  }

  /** Starts the sidecar (it holds inbound traffic off until the app is healthy). */
  async startSidecar(supervisor: ProcessSupervisor, paths: DemoPaths, mesh: MeshAccess): Promise<void> {
    const { spec, ports } = this;
    const args = [
      skeinBin, 'sidecar',
      '--service', spec.service,
      '--version', spec.version,
      '--instance-id', spec.id,
      '--app-port', String(ports.app),
      '--app-protocol', spec.protocol,
      '--inbound-host', ADVERTISE_ADDRESS,
      '--inbound-port', String(ports.inbound),
      '--outbound-port', String(ports.outbound),
      '--admin-port', String(ports.admin),
      '--advertise-address', ADVERTISE_ADDRESS,
      '--control-plane', mesh.grpcAddress,
      '--ca-file', mesh.caFile,
      '--drain-timeout', '5s',
    ];
    if (mesh.consulUrl) args.push('--consul', mesh.consulUrl);
    // The shop's entry logs every request it takes and every call it makes on (the other
    // sidecars' lines would fill the disk of a demo left running under load).
    if (spec.public) args.push('--access-log', paths.log(`${spec.id}.access`), '--access-log-format', 'text');
    // The bootstrap token (--token) goes in the environment, which only this user can read:
    // a command line is anyone's to read in `ps`, and the token, good for an hour, gets a
    // certificate with the service's identity from the control plane.
    const env = { ...process.env, SKEIN_TOKEN: await mesh.token(spec.service) };
    this.sidecar = supervisor.start(`${spec.id} sidecar`, process.execPath, args, { logFile: paths.log(`${spec.id}.sidecar`), env });
  }

  /** Resolves once the app accepts connections. */
  async appListening(timeoutMs: number): Promise<void> {
    await waitFor(() => canConnect(this.ports.app), { timeoutMs, what: `${this.spec.id} to listen on ${this.ports.app}`, watch: this.processes() });
  }

  /** Resolves once the sidecar's /ready answers 200: certificate, config and a healthy app. */
  async ready(timeoutMs: number): Promise<void> {
    await waitFor(() => readyOrWhy(`${this.adminUrl}/ready`), { timeoutMs, what: `${this.spec.id}'s sidecar to be ready (${this.adminUrl}/ready)`, watch: this.processes() });
  }

  processes(): ManagedProcess[] {
    return [this.app, this.sidecar].filter((p): p is ManagedProcess => p !== undefined);
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** True once /ready answers 200; otherwise throws its reasons, so a timeout says what was missing. */
async function readyOrWhy(url: string): Promise<true> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  const text = await res.text();
  if (res.status === 200) return true;
  throw new Error(`/ready answered ${res.status}: ${text.trim().replace(/\n/g, '; ')}`);
}
