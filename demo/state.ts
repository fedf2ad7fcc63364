/**
 * The running demo, as a file in its data dir (`demo.json`, mode 0600: it holds the admin
 * token): `skein demo scenario` and `skein demo stop` find the demo through it, and tests
 * read every pid it started.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';

export interface InstanceState {
  readonly id: string;
  readonly service: string;
  readonly version: string;
  readonly appPort: number;
  readonly inboundPort: number;
  readonly outboundPort: number;
  readonly adminPort: number;
  /** Its app and its sidecar both run (one that crashed alone makes this false). */
  readonly running: boolean;
}

export interface DemoState {
  /** The orchestrator (`skein demo`). */
  readonly pid: number;
  readonly startedAt: string;
  readonly dataDir: string;
  readonly gatewayUrl: string;
  readonly adminUrl: string;
  readonly dashboardUrl: string;
  readonly adminToken: string;
  readonly grpcAddress: string;
  /** The orchestrator's own endpoint for stopping and starting instances. */
  readonly controlUrl: string;
  readonly registry: 'consul' | 'built-in';
  readonly consulUrl?: string;
  readonly loadRate: number;
  readonly instances: readonly InstanceState[];
  /** Every process the demo has started, including ones since stopped. */
  readonly pids: readonly number[];
}

export function writeState(file: string, state: DemoState): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}

export function readState(file: string): DemoState | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as DemoState;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
}

export function removeState(file: string): void {
  rmSync(file, { force: true });
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
