/**
 * Injection into one pod template (a Pod's metadata+spec, or a workload's `spec.template`):
 * reads what the sidecar needs from labels, annotations and container ports, and returns the
 * changed pod spec. Pure: the same input gives the same output, and an injected template is
 * left as it is, so injecting twice changes nothing.
 */
import { parsePortText } from '../common/net/port-text.js';
import { InjectError } from './errors.js';
import { ANNOTATIONS, BOOTSTRAP_VOLUME, INIT_CONTAINER, SIDECAR_CONTAINER, SIDECAR_UID, accessLogValue, assertNotSidecarPort, switchValue, type InjectOptions } from './options.js';
import { bootstrapVolume, redirectInitContainer, sidecarContainer, type ServiceParams } from './sidecar-container.js';
import { assertSidecarValue } from './sidecar-values.js';

type Obj = Record<string, unknown>;

export interface PodTemplateRef {
  /**
   * The template's metadata and spec, as plain data. Only the template's labels and
   * annotations steer injection: they are what a pod gets, and all the webhook ever sees.
   */
  readonly metadata: unknown;
  readonly spec: unknown;
  /** How errors name the document, e.g. `document 2 (Deployment/orders)`. */
  readonly document: string;
  /** Path of the template in the document, e.g. `spec.template` ('' for a Pod). */
  readonly field: string;
}

export type PodResult =
  | { readonly status: 'injected'; readonly spec: Obj; readonly params: ServiceParams }
  | { readonly status: 'opted-out' | 'already-injected' };

/** A plain mapping (not null, not a list), as YAML and JSON documents hold them. */
export function isObj(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `metadata.labels` or `metadata.annotations`, empty when missing or not a map. */
export function stringMap(metadata: unknown, key: 'labels' | 'annotations'): Record<string, unknown> {
  return isObj(metadata) && isObj(metadata[key]) ? (metadata[key] as Obj) : {};
}

function containersOf(spec: Obj, key: 'containers' | 'initContainers'): Obj[] {
  const list = spec[key];
  return Array.isArray(list) ? list.filter(isObj) : [];
}

export function injectPodTemplate(ref: PodTemplateRef, options: InjectOptions): PodResult {
  const at = (suffix: string): string => (ref.field ? `${ref.field}.${suffix}` : suffix);
  const fail = (code: ConstructorParameters<typeof InjectError>[0], field: string, detail: string): never => {
    throw new InjectError(code, ref.document, field, detail);
  };
  const lookup = (key: 'labels' | 'annotations', name: string): { value: string; field: string } | undefined => {
    const value = stringMap(ref.metadata, key)[name];
    return value === undefined || value === null ? undefined : { value: String(value), field: `${at('metadata')}.${key}.${name}` };
  };

  // The pod's own label counts too: the webhook's objectSelector never sends such a pod, and
  // the CLI must leave out what the webhook would.
  const optOuts = [lookup('annotations', ANNOTATIONS.inject), lookup('labels', ANNOTATIONS.inject)].map((found) => switchOf(found, ref.document));
  if (optOuts.includes(false)) return { status: 'opted-out' };
  const spec = ref.spec;
  if (!isObj(spec)) return fail('invalid-field', at('spec'), 'a pod spec (a mapping) is required');
  const containers = containersOf(spec, 'containers');
  if (containers.length === 0) return fail('invalid-field', at('spec.containers'), 'a pod needs at least one container');
  if (containersOf(spec, 'initContainers').some((c) => c.name === SIDECAR_CONTAINER)) return { status: 'already-injected' };

  if (spec.hostNetwork === true) {
    return fail('host-network', at('spec.hostNetwork'),
      `pods on the host network share the node's ports and iptables, so a sidecar cannot be added; set annotation ${ANNOTATIONS.inject}: "false" to leave this workload out`);
  }
  for (const [key, name] of [['containers', SIDECAR_CONTAINER], ['initContainers', INIT_CONTAINER], ['containers', INIT_CONTAINER]] as const) {
    const i = containersOf(spec, key).findIndex((c) => c.name === name);
    if (i >= 0) fail('name-conflict', at(`spec.${key}[${i}].name`), `the container name ${name} is reserved for Skein`);
  }
  const volumes = Array.isArray(spec.volumes) ? spec.volumes : [];
  const volumeIndex = volumes.findIndex((v) => isObj(v) && v.name === BOOTSTRAP_VOLUME);
  if (volumeIndex >= 0) fail('name-conflict', at(`spec.volumes[${volumeIndex}].name`), `the volume name ${BOOTSTRAP_VOLUME} is reserved for Skein`);

  const params = resolveParams(containers, lookup, options, ref.document, at, fail);
  if (params.transparent) assertNoAppAsSidecarUid(spec, at, fail);
  const injected: unknown[] = [...(params.transparent ? [redirectInitContainer(params, options)] : []), sidecarContainer(params, options)];
  const next: Obj = { ...structuredClone(spec) };
  next.initContainers = [...injected, ...containersOf(next, 'initContainers')];
  next.volumes = [...(Array.isArray(next.volumes) ? next.volumes : []), bootstrapVolume(params, options)];
  // The app stops first, then the sidecar drains: the grace period must leave room for the drain.
  const neededGrace = options.drainTimeoutSeconds + 5;
  const grace = typeof spec.terminationGracePeriodSeconds === 'number' ? spec.terminationGracePeriodSeconds : 30;
  if (grace < neededGrace) next.terminationGracePeriodSeconds = neededGrace;
  return { status: 'injected', spec: next, params };
}

/**
 * Transparent mode lets the sidecar's uid out unredirected (its own calls must not loop back
 * to it), so a container of the app running as that uid would bypass the sidecar unnoticed.
 * A container's own `runAsUser` wins over the pod's.
 */
function assertNoAppAsSidecarUid(spec: Obj, at: (s: string) => string, fail: Fail): void {
  const podUid = isObj(spec.securityContext) ? spec.securityContext.runAsUser : undefined;
  for (const key of ['initContainers', 'containers'] as const) {
    const list: unknown[] = Array.isArray(spec[key]) ? spec[key] : [];
    list.forEach((c, i) => {
      const own = isObj(c) && isObj(c.securityContext) ? c.securityContext.runAsUser : undefined;
      if ((own ?? podUid) !== SIDECAR_UID) return;
      fail('name-conflict', at(own === undefined ? 'spec.securityContext.runAsUser' : `spec.${key}[${i}].securityContext.runAsUser`),
        `transparent mode lets uid ${SIDECAR_UID} (the sidecar's) out without the redirect, so ${key}[${i}] running as ${SIDECAR_UID} would bypass the sidecar; run it as another uid, or leave transparent mode off`);
    });
  }
}

type Found = { value: string; field: string };
type Lookup = (key: 'labels' | 'annotations', name: string) => Found | undefined;
type Fail = (code: ConstructorParameters<typeof InjectError>[0], field: string, detail: string) => never;

/** A "true"/"false" setting, undefined when not set. */
function switchOf(found: Found | undefined, document: string): boolean | undefined {
  return found && switchValue(found.value, document, found.field);
}

function resolveParams(containers: Obj[], lookup: Lookup, options: InjectOptions, document: string, at: (s: string) => string, fail: Fail): ServiceParams {
  const named = lookup('annotations', ANNOTATIONS.service) ?? lookup('labels', 'app') ?? lookup('labels', 'app.kubernetes.io/name');
  if (!named) {
    return fail('no-service-name', at('metadata.labels.app'), `no service name: set the label app or the annotation ${ANNOTATIONS.service}`);
  }
  assertSidecarValue('service', named.value, document, named.field);
  const versionLabel = lookup('labels', 'version');
  if (versionLabel) assertSidecarValue('version', versionLabel.value, document, versionLabel.field);

  const { appPort, entry } = resolveAppPort(containers, lookup, options, document, at, fail);
  const protocolAnnotation = lookup('annotations', ANNOTATIONS.appProtocol);
  let appProtocol: 'http' | 'grpc' | undefined;
  if (protocolAnnotation) {
    if (protocolAnnotation.value !== 'http' && protocolAnnotation.value !== 'grpc') fail('invalid-field', protocolAnnotation.field, `expected http or grpc, got "${protocolAnnotation.value}"`);
    appProtocol = protocolAnnotation.value as 'http' | 'grpc';
  } else if (entry?.name?.startsWith('grpc')) {
    // The app port's own entry, wherever it is declared: another port's name says nothing about it.
    appProtocol = 'grpc';
  }

  const health = lookup('annotations', ANNOTATIONS.appHealthPath) ?? readinessPath(containers, appPort, at);
  if (health) assertSidecarValue('appHealthPath', health.value, document, health.field, `; set annotation ${ANNOTATIONS.appHealthPath} to the path the sidecar should ask for`);

  const transparent = switchOf(lookup('annotations', ANNOTATIONS.transparent), document) ?? options.transparent;
  let redirectPorts = options.redirectPorts;
  const portsAnnotation = lookup('annotations', ANNOTATIONS.redirectPorts);
  if (portsAnnotation) {
    redirectPorts = portsAnnotation.value.split(',').map((s) => parsePortText(s.trim()) ?? fail('invalid-field', portsAnnotation.field, `expected comma-separated ports (decimal, 1-65535), got "${portsAnnotation.value}"`));
  }
  const accessLogAnnotation = lookup('annotations', ANNOTATIONS.accessLog);
  const accessLog = accessLogAnnotation ? accessLogValue(accessLogAnnotation.value, document, accessLogAnnotation.field) : options.accessLog;
  return { service: named.value, version: versionLabel?.value ?? 'v1', appPort, appProtocol, appHealthPath: health?.value, transparent, redirectPorts, accessLog };
}

interface DeclaredPort {
  readonly containerPort: number;
  readonly name?: string;
  /** As Kubernetes writes it: TCP (the default), UDP or SCTP. */
  readonly protocol: string;
  /** Position in the container's `ports` list. */
  readonly index: number;
}

/** A container's declared ports. */
function portsOf(container: Obj): DeclaredPort[] {
  const list: unknown[] = Array.isArray(container.ports) ? container.ports : [];
  return list.flatMap((p, index) => (isObj(p) && typeof p.containerPort === 'number'
    ? [{ containerPort: p.containerPort, name: typeof p.name === 'string' ? p.name : undefined, protocol: typeof p.protocol === 'string' ? p.protocol : 'TCP', index }]
    : []));
}

/**
 * The app port (the annotation, else the first TCP port declared) and its own TCP entry when
 * one is declared. The sidecar forwards HTTP and gRPC, which run over TCP: a UDP or SCTP port
 * is never inferred, and one named by the annotation is refused.
 */
function resolveAppPort(containers: Obj[], lookup: Lookup, options: InjectOptions, document: string, at: (s: string) => string, fail: Fail): { appPort: number; entry?: DeclaredPort } {
  const ports = containers.flatMap((c, ci) => portsOf(c).map((p) => ({ ...p, field: at(`spec.containers[${ci}].ports[${p.index}]`) })));
  for (const p of ports) assertNotSidecarPort(p.containerPort, options, document, `${p.field}.containerPort`);
  const tcp = ports.filter((p) => p.protocol === 'TCP');

  const annotation = lookup('annotations', ANNOTATIONS.appPort);
  if (!annotation) {
    if (tcp[0]) return { appPort: tcp[0].containerPort, entry: tcp[0] };
    const none = ports[0] ? `no TCP container port to infer the app port from (${ports[0].field} is ${ports[0].protocol}; the sidecar forwards HTTP and gRPC, over TCP)` : 'no container port to infer the app port from';
    return fail('no-app-port', at('spec.containers[*].ports'), `${none}: declare one or set the annotation ${ANNOTATIONS.appPort}`);
  }
  const appPort = parsePortText(annotation.value) ?? fail('invalid-field', annotation.field, `not a port number (decimal, 1-65535): "${annotation.value}"`);
  assertNotSidecarPort(appPort, options, document, annotation.field);
  const entry = tcp.find((p) => p.containerPort === appPort);
  const other = ports.find((p) => p.containerPort === appPort);
  if (!entry && other) fail('invalid-field', annotation.field, `port ${appPort} is declared ${other.protocol} only (${other.field}), and the sidecar forwards HTTP and gRPC, over TCP`);
  return { appPort, entry };
}

/**
 * The app's own readiness check, when it is an HTTP GET on the app port (by number, or by the
 * name of one of the probing container's own ports, which is where the kubelet looks a name
 * up): the sidecar checks the same path.
 */
function readinessPath(containers: Obj[], appPort: number, at: (s: string) => string): { value: string; field: string } | undefined {
  for (const [ci, c] of containers.entries()) {
    const probe = isObj(c.readinessProbe) && isObj(c.readinessProbe.httpGet) ? c.readinessProbe.httpGet : undefined;
    const port = typeof probe?.port === 'string' ? portsOf(c).find((p) => p.name === probe.port)?.containerPort : probe?.port;
    if (probe && typeof probe.path === 'string' && port === appPort) {
      // The kubelet asks for `healthz` as /healthz; the sidecar needs the slash written.
      return { value: probe.path.startsWith('/') ? probe.path : `/${probe.path}`, field: at(`spec.containers[${ci}].readinessProbe.httpGet.path`) };
    }
  }
  return undefined;
}
