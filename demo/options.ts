/** What `skein demo` can be told (SPEC §9 defaults), and the layout of its data dir. */
import { join, resolve } from 'node:path';

/** `auto`: a consul binary if one is at hand, else the built-in registry; `off`; or an agent's URL. */
export type ConsulChoice = 'auto' | 'off' | { readonly url: string };

export interface DemoOptions {
  readonly dataDir: string;
  /** 0 picks a free port. */
  readonly gatewayPort: number;
  /** Control-plane admin API and dashboard; 0 picks a free port. */
  readonly controlPlanePort: number;
  readonly consul: ConsulChoice;
  /** Requests per second of the load generator; 0 starts none (--no-load). */
  readonly loadRate: number;
  /** Wipe the data dir first (fresh databases, CA and store). */
  readonly fresh: boolean;
}

export const DEFAULT_OPTIONS: DemoOptions = {
  dataDir: './.skein/demo',
  gatewayPort: 8080,
  controlPlanePort: 15080,
  consul: 'auto',
  loadRate: 10,
  fresh: false,
};

/** Where everything lives under the demo's data dir. */
export class DemoPaths {
  readonly root: string;

  constructor(dataDir: string) {
    this.root = resolve(dataDir);
  }

  /** The control plane's own data dir (store, CA, admin token). */
  get controlPlane(): string {
    return join(this.root, 'control-plane');
  }

  /** The trust bundle sidecars pass as --ca-file. */
  get caFile(): string {
    return join(this.controlPlane, 'ca.crt');
  }

  get adminTokenFile(): string {
    return join(this.controlPlane, 'admin-token');
  }

  /** Databases of the services (each its own file, named by the service). */
  get services(): string {
    return this.root;
  }

  get logs(): string {
    return join(this.root, 'logs');
  }

  log(name: string): string {
    return join(this.logs, `${name}.log`);
  }

  /** Ports, pids and URLs of the running demo, for `skein demo scenario` and `skein demo stop`. */
  get stateFile(): string {
    return join(this.root, 'demo.json');
  }

  /** Every process the demo started, for a stop or the next start to find what a crash left. */
  get pidFile(): string {
    return join(this.root, 'demo.pids');
  }
}
