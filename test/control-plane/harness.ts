/**
 * Starts a real `skein control-plane` process for end-to-end tests and hands back its
 * ports, admin token, CA file and an admin client. Ports come from the OS (or are given,
 * to restart on the same ones); the process is owned by the test's `Processes`.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { AdminClient } from '../../cli/admin-client.js';
import { createLogger } from '../../common/log.js';
import { ControlPlaneSource } from '../../sidecar/control-plane/source.js';
import { freePorts, tempDir, waitForHttp, waitUntil, type Child, type Processes } from '../support/index.js';

export interface ControlPlaneProcess {
  readonly child: Child;
  readonly dataDir: string;
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly adminUrl: string;
  readonly grpcAddress: string;
  readonly adminToken: string;
  readonly caFile: string;
  /** Authenticated with the admin token. */
  readonly api: AdminClient;
}

export interface ControlPlaneSpawnOptions {
  readonly dataDir?: string;
  readonly httpPort?: number;
  readonly grpcPort?: number;
  readonly args?: readonly string[];
  /** SKEIN_ADMIN_TOKEN for the child; '' leaves it unset so the data dir's admin-token is used. */
  readonly adminToken?: string;
}

export const ADMIN_TOKEN = 'test-admin-token';

export async function startControlPlane(procs: Processes, options: ControlPlaneSpawnOptions = {}): Promise<ControlPlaneProcess> {
  const dataDir = options.dataDir ?? tempDir('skein-cp-');
  const [httpPort, grpcPort] =
    options.httpPort && options.grpcPort ? [options.httpPort, options.grpcPort] : ((await freePorts(2)) as [number, number]);
  // An empty SKEIN_ADMIN_TOKEN counts as unset: the control plane uses (or creates) the data dir's file.
  const adminToken = options.adminToken ?? ADMIN_TOKEN;
  const child = procs.skein(
    'control-plane',
    [
      'control-plane',
      '--data-dir', dataDir,
      '--http-port', String(httpPort),
      '--grpc-port', String(grpcPort),
      '--grpc-host', '127.0.0.1',
      '--resync-hold', '2s',
      '--registry-grace', '5s',
      ...(options.args ?? []),
    ],
    { SKEIN_ADMIN_TOKEN: adminToken },
  );
  const adminUrl = `http://127.0.0.1:${httpPort}`;
  // Generous: first start creates the CA (RSA keys), which is slow on a busy 2-core machine.
  await waitForHttp(child, `${adminUrl}/healthz`, 30_000);
  return {
    child,
    dataDir,
    httpPort,
    grpcPort,
    adminUrl,
    grpcAddress: `127.0.0.1:${grpcPort}`,
    adminToken,
    caFile: join(dataDir, 'ca.crt'),
    api: new AdminClient(adminUrl, adminToken || undefined),
  };
}

export async function createToken(cp: ControlPlaneProcess, service: string): Promise<string> {
  const res = await cp.api.post<{ token: string }>('/api/v1/tokens', { service });
  return res.body.token;
}

export interface TestSourceOptions {
  readonly service: string;
  readonly instanceId: string;
  readonly token?: string;
  readonly caFile?: string;
  readonly version?: string;
  readonly inboundPort?: number;
  /** What it announces as its address; 127.0.0.1 unless a test wants another. */
  readonly address?: string;
  readonly keepaliveMs?: number;
  readonly backoff?: { baseMs: number; maxMs: number };
}

/** A sidecar's real control-plane client, run in the test process: it announces `service` to `cp` and is not started. */
export function testSource(cp: ControlPlaneProcess, opts: TestSourceOptions): ControlPlaneSource {
  return new ControlPlaneSource({
    address: cp.grpcAddress,
    caFile: opts.caFile ?? cp.caFile,
    token: opts.token,
    announce: { service: opts.service, instanceId: opts.instanceId, version: opts.version ?? 'v1', address: opts.address ?? '127.0.0.1', inboundPort: opts.inboundPort ?? 15443, adminPort: 0, protocol: 'http', labels: {} },
    logger: createLogger('test-sidecar', 'silent'),
    keepaliveMs: opts.keepaliveMs,
    backoff: opts.backoff ?? { baseMs: 50, maxMs: 300 },
  });
}

/** A healthy instance of `service` with `version` (a testSource, started), once the control plane lists it; close it when done. */
export async function announceInstance(cp: ControlPlaneProcess, service: string, version: string): Promise<ControlPlaneSource> {
  const source = testSource(cp, { service, instanceId: `${service}-${version}-${randomUUID().slice(0, 8)}`, version, token: await createToken(cp, service) });
  void source.start(() => {});
  const listed = async () => (await cp.api.get<{ instances: { version: string; health: string }[] }>(`/api/v1/services/${service}`)).body.instances;
  await waitUntil(async () => (await listed()).some((i) => i.version === version && i.health === 'healthy'), { what: `a healthy ${service} ${version} instance` });
  return source;
}
