/**
 * Sidecars in control-plane mode for identity tests: each gets its certificate from the
 * control plane's CA with a bootstrap token, and its snapshot from the push stream. Also a
 * steady load generator that counts every failed request.
 */
import { connect, type PeerCertificate } from 'node:tls';
import { request } from 'undici';
import { ADMIN_TOKEN, createToken, type ControlPlaneProcess } from '../control-plane/harness.js';
import { freePorts, skeinBin, waitForHttp, waitUntil, type Child, type Processes } from '../support/index.js';

export interface MeshSidecar {
  readonly child: Child;
  readonly service: string;
  readonly adminUrl: string;
  readonly outboundUrl: string;
  readonly inboundPort: number;
}

export interface MeshSidecarOptions {
  readonly service: string;
  readonly appPort: number;
  /** Subset label (--version); default v1. */
  readonly version?: string;
  /** Default: a fresh token for `service`. */
  readonly token?: string;
  readonly waitFor?: '/ready' | 'none';
  /** With waitFor '/ready': also wait until the control plane lists the instance healthy (default true; a scripted control plane keeps no registry). */
  readonly listed?: boolean;
  /** Extra environment, e.g. SKEIN_OTLP_ENDPOINT. */
  readonly env?: NodeJS.ProcessEnv;
  /** The trust bundle that verifies the control plane; default its ca.crt. */
  readonly caFile?: string;
  /** Give the trust bundle as SKEIN_CA_FILE instead of --ca-file. */
  readonly caFileFromEnv?: boolean;
  /** Extra sidecar flags, e.g. ['--app-protocol', 'grpc']. */
  readonly extraArgs?: readonly string[];
}

export async function startMeshSidecar(procs: Processes, cp: ControlPlaneProcess, options: MeshSidecarOptions): Promise<MeshSidecar> {
  const [inboundPort, outboundPort, adminPort] = (await freePorts(3)) as [number, number, number];
  const token = options.token ?? (await createToken(cp, options.service));
  const child = procs.skein(`sidecar ${options.service}`, [
    'sidecar',
    '--service', options.service,
    '--version', options.version ?? 'v1',
    '--app-port', String(options.appPort),
    '--control-plane', cp.grpcAddress,
    '--token', token,
    ...(options.caFileFromEnv ? [] : ['--ca-file', options.caFile ?? cp.caFile]),
    '--inbound-host', '127.0.0.1',
    '--inbound-port', String(inboundPort),
    '--outbound-port', String(outboundPort),
    '--admin-port', String(adminPort),
    '--advertise-address', '127.0.0.1',
    ...(options.extraArgs ?? []),
  ], options.caFileFromEnv ? { ...options.env, SKEIN_CA_FILE: cp.caFile } : options.env);
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  if (options.waitFor !== 'none') {
    await waitForHttp(child, `${adminUrl}/ready`, 30_000);
    // Ready, it reports so up its stream; only then is it an endpoint for the others (built-in registry).
    if (options.listed !== false) await waitUntil(async () => (await instanceHealth(cp, options.service, inboundPort)) === 'healthy' || undefined, { what: `${options.service} listed healthy by the control plane`, timeoutMs: 10_000 });
  }
  return { child, service: options.service, adminUrl, outboundUrl: `http://127.0.0.1:${outboundPort}`, inboundPort };
}

/** The control plane's health of the instance of `service` whose sidecar listens on `inboundPort`. */
export async function instanceHealth(cp: ControlPlaneProcess, service: string, inboundPort: number): Promise<string | undefined> {
  const res = await cp.api.get<{ instances?: { port: number; health: string }[] }>(`/api/v1/services/${service}`);
  return res.body.instances?.find((i) => i.port === inboundPort)?.health;
}

/** Runs the `skein` CLI against the control plane; resolves with its exit code and output. */
export async function skeinCli(procs: Processes, cp: ControlPlaneProcess, args: readonly string[]): Promise<{ code: number | null; output: string }> {
  const child = procs.spawn(`skein ${args.join(' ')}`, process.execPath, [skeinBin, ...args, '--control-plane', cp.adminUrl], { SKEIN_ADMIN_TOKEN: ADMIN_TOKEN });
  const exit = await child.exited;
  return { code: exit.code, output: child.output() };
}

export async function get(from: Pick<MeshSidecar, 'outboundUrl'>, host: string, path = '/', headers: Record<string, string> = {}): Promise<{ status: number; reason?: string; body: string }> {
  const res = await request(`${from.outboundUrl}${path}`, { headers: { host, ...headers } });
  const reason = res.headers['x-skein-reason'];
  return { status: res.statusCode, reason: typeof reason === 'string' ? reason : undefined, body: await res.body.text() };
}

/** Which app (an echo upstream's `name`) answered each of `n` requests to `host` through `from`; `HTTP status reason` for a failure. */
export async function answeredBy(from: Pick<MeshSidecar, 'outboundUrl'>, host: string, n: number, path = '/items'): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await get(from, host, path);
    names.push(r.status === 200 ? (JSON.parse(r.body) as { name: string }).name : `HTTP ${r.status} ${r.reason ?? ''}`);
  }
  return names;
}

/** `concurrency` request loops against `host` through `from` until `stop()`; every non-200 or error is kept. */
export function steadyLoad(from: MeshSidecar, host: string, concurrency = 4) {
  let running = true;
  let ok = 0;
  const failures: string[] = [];
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) {
      try {
        const r = await get(from, host, '/load');
        if (r.status === 200) ok++;
        else failures.push(`${r.status} ${r.reason ?? ''} ${r.body.slice(0, 200)}`);
      } catch (err) {
        failures.push(String((err as Error).message));
      }
    }
  });
  return {
    get ok() {
      return ok;
    },
    failures,
    async stop() {
      running = false;
      await Promise.all(loops);
      return { ok, failures };
    },
  };
}

export async function metricValue(sidecar: MeshSidecar, name: RegExp): Promise<number | undefined> {
  const text = await (await fetch(`${sidecar.adminUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => name.test(l));
  return line ? Number(line.split(' ').at(-1)) : undefined;
}

/**
 * The certificate a sidecar serves on its inbound port; rejects unless it chains to `caPem`.
 * The handshake completes on the client side before the sidecar judges the client's own
 * certificate, so a client without one still sees the server's.
 */
export function servedCertificate(sidecar: MeshSidecar, caPem: string, client?: { certPem: string; keyPem: string }): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: sidecar.inboundPort, ca: caPem, cert: client?.certPem, key: client?.keyPem, checkServerIdentity: () => undefined });
    socket.once('secureConnect', () => {
      resolve(socket.getPeerCertificate());
      socket.destroy();
    });
    socket.once('error', reject);
  });
}
