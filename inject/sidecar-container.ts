/**
 * The containers and volume injected into a pod: the sidecar as a native sidecar (an init
 * container with `restartPolicy: Always`, Kubernetes 1.29+), so it starts before the app and
 * stops after it, and a Job's pod completes when its app containers do; optionally the
 * transparent-mode init container before it.
 */
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar';
import { BOOTSTRAP_DIR, BOOTSTRAP_VOLUME, INIT_CONTAINER, SIDECAR_CONTAINER, SIDECAR_UID, tokenSecretName, type AccessLogSetting, type InjectOptions } from './options.js';
import { redirectScript } from './transparent.js';

/** What injection learned about one workload (from labels, annotations and container ports). */
export interface ServiceParams {
  readonly service: string;
  readonly version: string;
  readonly appPort: number;
  readonly appProtocol?: 'http' | 'grpc';
  readonly appHealthPath?: string;
  readonly transparent: boolean;
  readonly redirectPorts: readonly number[];
  /** `skein.io/access-log`, else `--access-log`. */
  readonly accessLog: AccessLogSetting;
}

/**
 * The admin listener is bound to 127.0.0.1 (SPEC §3), which an httpGet probe (sent by the
 * kubelet to the pod IP) cannot reach; so probes run a one-line fetch with the image's node.
 */
function adminCall(adminPort: number, path: string, method = 'GET'): string[] {
  const script = `fetch('http://127.0.0.1:${adminPort}${path}',{method:'${method}'}).then((r)=>process.exit(r.ok?0:1),()=>process.exit(1))`;
  return ['node', '-e', script];
}

/** The sidecar's settings, as the SKEIN_* environment variables `skein sidecar` reads (SPEC §3). */
export function sidecarEnv(params: ServiceParams, options: InjectOptions): Array<[string, string]> {
  return [
    ['SKEIN_SERVICE', params.service],
    ['SKEIN_VERSION', params.version],
    ['SKEIN_APP_PORT', String(params.appPort)],
    ...(params.appProtocol ? [['SKEIN_APP_PROTOCOL', params.appProtocol] as [string, string]] : []),
    ...(params.appHealthPath ? [['SKEIN_APP_HEALTH_PATH', params.appHealthPath] as [string, string]] : []),
    ['SKEIN_INBOUND_PORT', String(options.inboundPort)],
    ['SKEIN_OUTBOUND_PORT', String(options.outboundPort)],
    ['SKEIN_ADMIN_PORT', String(options.adminPort)],
    ['SKEIN_CONTROL_PLANE', options.controlPlane],
    ['SKEIN_DRAIN_TIMEOUT', `${options.drainTimeoutSeconds}s`],
    ...(options.consul ? [['CONSUL_HTTP_ADDR', options.consul] as [string, string]] : []),
    ...(params.accessLog === 'off' ? [] : [['SKEIN_ACCESS_LOG', 'stdout'], ['SKEIN_ACCESS_LOG_FORMAT', params.accessLog]] as Array<[string, string]>),
  ];
}

export function sidecarContainer(params: ServiceParams, options: InjectOptions): IContainer {
  const env: IEnvVar[] = [
    ...sidecarEnv(params, options).map(([name, value]) => ({ name, value })),
    { name: 'SKEIN_TOKEN', valueFrom: { secretKeyRef: { name: tokenSecretName(params.service), key: 'token' } } },
    { name: 'SKEIN_CA_FILE', value: `${BOOTSTRAP_DIR}/ca.crt` },
    { name: 'SKEIN_ADVERTISE_ADDRESS', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    { name: 'SKEIN_INSTANCE_ID', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
  ];
  return {
    name: SIDECAR_CONTAINER,
    image: options.image,
    restartPolicy: 'Always',
    args: ['sidecar'],
    ports: [{ name: 'skein-inbound', containerPort: options.inboundPort, protocol: 'TCP' }],
    env,
    // Kubernetes starts the app containers once a native sidecar's startup probe passes: on
    // /ready/outbound (config and certificate in hand), the app's first calls go through. Not
    // /ready, which waits for a healthy app that would never start. Ten minutes, as Istio
    // allows, for the certificate to be signed and a control plane down at start to return.
    startupProbe: { exec: { command: adminCall(options.adminPort, '/ready/outbound') }, periodSeconds: 1, timeoutSeconds: 3, failureThreshold: 600 },
    readinessProbe: { exec: { command: adminCall(options.adminPort, '/ready') }, periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 2 },
    // Kubelet stops a native sidecar after the app containers have exited; the hook starts the
    // drain (fail /ready, deregister from Consul) before SIGTERM, inside the grace period.
    lifecycle: { preStop: { exec: { command: adminCall(options.adminPort, '/drain', 'POST') } } },
    resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '1', memory: '256Mi' } },
    securityContext: {
      runAsUser: SIDECAR_UID,
      runAsGroup: SIDECAR_UID,
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    },
    volumeMounts: [{ name: BOOTSTRAP_VOLUME, mountPath: BOOTSTRAP_DIR, readOnly: true }],
  };
}

/** Transparent mode's init container: installs the redirect, then exits; needs NET_ADMIN once. */
export function redirectInitContainer(params: ServiceParams, options: InjectOptions): IContainer {
  return {
    name: INIT_CONTAINER,
    image: options.image,
    command: ['sh', '-c', redirectScript({ outboundPort: options.outboundPort, redirectPorts: params.redirectPorts })],
    resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '100m', memory: '64Mi' } },
    securityContext: {
      runAsUser: 0,
      runAsNonRoot: false,
      allowPrivilegeEscalation: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    },
  };
}

/** The bootstrap token (a Secret per service) and the trust bundle (a ConfigMap), in one read-only volume. */
export function bootstrapVolume(params: ServiceParams, options: InjectOptions): IVolume {
  return {
    name: BOOTSTRAP_VOLUME,
    projected: {
      sources: [
        { secret: { name: tokenSecretName(params.service), items: [{ key: 'token', path: 'token' }] } },
        { configMap: { name: options.caConfigMap, items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
      ],
    },
  };
}
