/** The demo's control plane: a `skein control-plane` process, its admin client, and the mesh config it is given. */
import { AdminClient } from '../cli/admin-client.js';
import { resolveAdminToken } from '../control-plane/admin-token.js';
import type { IssuedToken } from '../control-plane/tokens.js';
import type { DemoPaths } from './options.js';
import { skeinBin } from './package-root.js';
import { freePorts } from '../common/net/free-ports.js';
import type { ManagedProcess, ProcessSupervisor } from './processes.js';
import { INTENTIONS, POLICIES, ROUTES } from './topology.js';
import { answers200, waitFor, withTimeout } from './wait.js';

/** Longest wait for one admin API call. */
const ADMIN_CALL_MS = 15_000;

export interface RunningControlPlane {
  readonly process: ManagedProcess;
  readonly adminUrl: string;
  readonly grpcAddress: string;
  readonly adminToken: string;
  readonly api: AdminClient;
}

export async function startControlPlane(
  supervisor: ProcessSupervisor,
  paths: DemoPaths,
  options: { httpPort: number; consulUrl?: string },
): Promise<RunningControlPlane> {
  const [grpcPort] = (await freePorts(1)) as [number];
  const args = [
    skeinBin, 'control-plane',
    '--data-dir', paths.controlPlane,
    '--http-port', String(options.httpPort),
    '--grpc-host', '127.0.0.1',
    '--grpc-port', String(grpcPort),
    // A demo instance that is killed leaves the mesh within 10 s even if nothing else notices.
    '--registry-grace', '10s',
  ];
  if (options.consulUrl) args.push('--consul', options.consulUrl);
  const proc = supervisor.start('control-plane', process.execPath, args, { logFile: paths.log('control-plane') });
  const adminUrl = `http://127.0.0.1:${options.httpPort}`;
  await waitFor(() => answers200(`${adminUrl}/healthz`), { timeoutMs: 30_000, what: `the control plane at ${adminUrl}`, watch: [proc] });
  const adminToken = await controlPlaneAdminToken(paths.controlPlane);
  return { process: proc, adminUrl, grpcAddress: `127.0.0.1:${grpcPort}`, adminToken, api: new AdminClient(adminUrl, adminToken) };
}

/**
 * The admin token the control plane took, read by its own rule (control-plane/admin-token.ts):
 * SKEIN_ADMIN_TOKEN trimmed, or the data dir's file when it is blank. Taken raw, a variable
 * the control plane ignored as blank, or one it trimmed, would make every admin call a 401.
 */
export async function controlPlaneAdminToken(controlPlaneDir: string, fromEnv: string | undefined = process.env.SKEIN_ADMIN_TOKEN): Promise<string> {
  return (await resolveAdminToken(controlPlaneDir, fromEnv)).token;
}

/** Policies, routes (catalog split v1=100 v2=0) and intentions (default deny), before any sidecar connects. */
export async function applyMeshConfig(api: AdminClient): Promise<void> {
  const apply = async () => {
    await Promise.all(Object.entries(POLICIES).map(([service, policy]) => api.put(`/api/v1/services/${service}/policy`, policy)));
    await Promise.all(Object.entries(ROUTES).map(([service, rules]) => api.put(`/api/v1/routes/${service}`, rules)));
    await api.put('/api/v1/intentions', INTENTIONS);
  };
  await withTimeout(apply(), ADMIN_CALL_MS, `the control plane at ${api.baseUrl} to take the demo's config`);
}

export async function bootstrapToken(api: AdminClient, service: string): Promise<string> {
  const issued = await withTimeout(api.post<IssuedToken>('/api/v1/tokens', { service, ttl: '1h' }), ADMIN_CALL_MS, `a bootstrap token for ${service}`);
  return issued.body.token;
}

interface ServiceView {
  readonly name: string;
  readonly instances: readonly { id: string; health: string }[];
}

/** Whether discovery (the built-in registry or Consul's catalog) lists the instance as healthy, as the control plane sees it. */
export async function discoveredHealthy(api: AdminClient, service: string, instanceId: string): Promise<boolean> {
  const res = await withTimeout(api.get<ServiceView>(`/api/v1/services/${service}`), ADMIN_CALL_MS, `the control plane's view of ${service}`);
  return res.body.instances.some((i) => i.id === instanceId && i.health === 'healthy');
}
