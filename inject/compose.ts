/**
 * `skein inject` on a Compose file: for each app service `<name>`, a `<name>-skein` service
 * that joins its network namespace (`network_mode: service:<name>`), so the app reaches its
 * sidecar on 127.0.0.1 and other sidecars reach it on `<name>:15443`. The sidecar gets its
 * bootstrap token from the variable SKEIN_TOKEN_<NAME> (environment or `.env`) and the trust
 * bundle (`ca.crt`) from a read-only volume, never the control plane's data dir, which holds
 * the CA key. Services labelled `skein.io/inject: "false"`
 * (Consul, the control plane, databases) are left alone.
 */
import { Pair, isMap, isScalar, type Document } from 'yaml';
import { parsePortText } from '../common/net/port-text.js';
import { InjectError, describeDocument } from './errors.js';
import { TO_STRING, describeOutcome, type InjectResult } from './kubernetes.js';
import { ANNOTATIONS, DEFAULT_INJECT_OPTIONS, accessLogValue, assertNotSidecarPort, isNamedVolume, switchValue, type InjectOptions } from './options.js';
import { sidecarEnv, type ServiceParams } from './sidecar-container.js';
import { isObj } from './pod.js';
import { assertSidecarValue } from './sidecar-values.js';

type Obj = Record<string, unknown>;

const SUFFIX = '-skein';
const CA_DIR = '/etc/skein/ca';

/**
 * A file is taken for Compose when it is one mapping with a `services` key and no Kubernetes
 * `apiVersion` or `kind`, whatever `services` holds: a broken one is then refused as Compose.
 */
export function looksLikeCompose(docs: Document.Parsed[]): boolean {
  const objects = docs.map((d) => d.toJS() as unknown).filter((o) => o !== null && o !== undefined);
  const [only] = objects;
  return objects.length === 1 && isObj(only) && 'services' in only && only.apiVersion === undefined && only.kind === undefined;
}

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  return `a ${typeof value}`;
}

/** Compose labels may be a mapping or a list of `key=value`. */
function labelsOf(service: Obj): Record<string, string> {
  const { labels } = service;
  if (Array.isArray(labels)) {
    // `KEY` alone is the label with an empty value.
    return Object.fromEntries(labels.map((l) => String(l)).map((l) => (l.includes('=') ? [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] : [l, ''])));
  }
  // A key without a value (`version:`) is the label with an empty value, as in the list form.
  return isObj(labels) ? Object.fromEntries(Object.entries(labels).map(([k, v]) => [k, v === null || v === undefined ? '' : String(v)])) : {};
}

/** A container-side port entry of `expose` or `ports`, with the field it is written at. */
interface DeclaredPort {
  readonly first: number;
  readonly last: number;
  readonly protocol: string;
  readonly field: string;
}

/** A service with what it inherits through `extends`, as Compose runs it. */
interface EffectiveService {
  /** Its settings over those of the services it extends (its own win). */
  readonly service: Obj;
  readonly labels: Record<string, string>;
  /** Where each label is written, e.g. `services.base.labels.version`. */
  readonly labelFields: Record<string, string>;
  /** `expose` entries, then `ports`, each the bases' first, as Compose merges them. */
  readonly ports: DeclaredPort[];
  /** An `extends` of a service in another file, which is not read (for errors it may explain). */
  readonly elsewhere?: string;
}

/**
 * Resolves `extends` within the file (`extends: base`, `extends: {service: base}`), so a
 * service inheriting its ports or labels is injected as Compose runs it. One naming another
 * file is not followed: that file is not at hand.
 */
function effectiveService(services: Obj, name: string, document: string): EffectiveService {
  const chain: Array<{ name: string; service: Obj }> = [];
  let elsewhere: string | undefined;
  for (let current: string | undefined = name; current !== undefined; ) {
    if (chain.some((c) => c.name === current)) throw new InjectError('invalid-field', document, `services.${chain[0]!.name}.extends`, `extends leads back to ${current}`);
    const declared: unknown = services[current];
    const service: Obj = isObj(declared) ? declared : {};
    chain.unshift({ name: current, service });
    const base: unknown = service.extends;
    const field = `services.${current}.extends`;
    current = undefined;
    if (base === undefined) break;
    if (isObj(base) && base.file !== undefined) {
      elsewhere = `${field} names ${String(base.service)} in ${String(base.file)}, which skein inject does not read`;
    } else {
      const target: unknown = isObj(base) ? base.service : base;
      if (typeof target !== 'string' || !isObj(services[target])) throw new InjectError('invalid-field', document, field, `extends ${JSON.stringify(target)}, which is not a service of this file`);
      current = target;
    }
  }
  const labels: Record<string, string> = {};
  const labelFields: Record<string, string> = {};
  for (const c of chain) {
    for (const [key, value] of Object.entries(labelsOf(c.service))) {
      labels[key] = value;
      labelFields[key] = `services.${c.name}.labels.${key}`;
    }
  }
  const ports = (['expose', 'ports'] as const).flatMap((key) => chain.flatMap((c) => {
    const entries: unknown[] = Array.isArray(c.service[key]) ? c.service[key] : [];
    return entries.map((entry, i) => ({ ...targetPorts(entry), field: `services.${c.name}.${key}[${i}]` }));
  }));
  return { service: Object.assign({}, ...chain.map((c) => c.service)) as Obj, labels, labelFields, ports, elsewhere };
}

/**
 * The container-side ports of a Compose `ports`/`expose` entry ("8080:80/tcp", "127.0.0.1:8080:80",
 * 80, {target: 80}, "9000-9010:9000-9010", "53:53/udp"), as first and last port (one port is a
 * range of one) and protocol (tcp unless written).
 */
function targetPorts(entry: unknown): { first: number; last: number; protocol: string } {
  const [address, protocol = 'tcp'] = isObj(entry) ? [String(entry.target), entry.protocol ?? undefined] : String(entry).split('/');
  const [first, last = first] = address!.split(':').at(-1)!.split('-').map(Number) as [number, number?];
  return { first, last, protocol: String(protocol).toLowerCase() };
}

function hostOf(address: string | undefined): string | undefined {
  if (!address) return undefined;
  const withoutScheme = address.replace(/^[a-z]+:\/\//, '');
  return withoutScheme.split(/[:/]/)[0];
}

/** `command` as a list of words (Compose takes a list or one shell-like string). */
function commandWords(service: Obj): string[] {
  const { command } = service;
  if (Array.isArray(command)) return command.map(String);
  return typeof command === 'string' ? command.trim().split(/\s+/) : [];
}

/** The gRPC address of a service running `skein control-plane` (its `--grpc-port`, else 15012), if the file has one. */
function controlPlaneService(services: Obj): string | undefined {
  for (const [name, service] of Object.entries(services)) {
    const words = isObj(service) ? commandWords(service) : [];
    if (words[0] !== 'control-plane') continue;
    const flag = words.findIndex((w) => w === '--grpc-port' || w.startsWith('--grpc-port='));
    const port = flag < 0 ? undefined : words[flag]!.includes('=') ? words[flag]!.split('=')[1] : words[flag + 1];
    return `${name}:${port ?? 15012}`;
  }
  return undefined;
}

/**
 * Where the sidecars dial the control plane. `--control-plane` left at its default names the
 * Kubernetes service, which a Compose network cannot resolve: a service of the file that runs
 * `skein control-plane` is used instead, and without one a note says the default stays.
 */
function resolveControlPlane(services: Obj, options: InjectOptions): { address: string; note?: string } {
  if (options.controlPlane !== DEFAULT_INJECT_OPTIONS.controlPlane) return { address: options.controlPlane };
  const found = controlPlaneService(services);
  if (found) return { address: found, note: `control plane: ${found} (the service running skein control-plane; --control-plane to change)` };
  return {
    address: options.controlPlane,
    note: `note: sidecars dial the control plane at ${options.controlPlane}, the Kubernetes default, as no service in this file runs skein control-plane; pass --control-plane HOST:PORT as the containers reach it`,
  };
}

/**
 * Why a service's `network_mode` leaves no place for a sidecar, or undefined when the service
 * gets a network namespace of its own (`bridge`, the default, or a network's name).
 */
function networkModeProblem(mode: string): { code: 'host-network' | 'invalid-field'; detail: string } | undefined {
  if (mode === 'host') return { code: 'host-network', detail: "shares the host's network namespace, where the sidecar's ports are the host's" };
  if (mode === 'none') return { code: 'invalid-field', detail: 'has no network: its sidecar could reach neither the control plane nor the other sidecars' };
  const joined = /^(service|container):(.*)$/.exec(mode);
  if (joined) return { code: 'invalid-field', detail: `joins the network namespace of ${joined[1]} ${joined[2]} instead of having its own for a sidecar` };
  return undefined;
}

export function injectCompose(doc: Document.Parsed, given: InjectOptions): InjectResult {
  const document = describeDocument(0);
  const root = doc.toJS() as Obj;
  const servicesNode = doc.get('services', true);
  if (!isMap(servicesNode)) {
    throw new InjectError('invalid-field', document, 'services', `a Compose file needs its services as a mapping (name: settings), got ${describeValue(root.services)}`);
  }
  const services = root.services as Obj;
  const controlPlane = resolveControlPlane(services, given);
  const options = { ...given, controlPlane: controlPlane.address };
  const notes: string[] = [];
  const added: Array<{ after: string; name: string; value: Obj }> = [];
  const dependencies = [hostOf(options.controlPlane), hostOf(options.consul)].filter((h): h is string => h !== undefined && h in services);

  for (const name of Object.keys(services)) {
    if (name.endsWith(SUFFIX) && (name.slice(0, -SUFFIX.length) in services)) continue;
    const field = (suffix: string): string => `services.${name}${suffix ? `.${suffix}` : ''}`;
    const effective = effectiveService(services, name, document);
    const { service, labels } = effective;
    const what = `service/${name}`;
    const optOut = labels[ANNOTATIONS.inject];
    if (optOut !== undefined && !switchValue(optOut, document, effective.labelFields[ANNOTATIONS.inject]!)) {
      notes.push(describeOutcome({ what, status: 'opted-out' }));
      continue;
    }
    if (dependencies.includes(name)) {
      // The control plane and Consul the sidecars depend on are not meshed behind sidecars of their own.
      notes.push(`${what}: the mesh's own ${name === hostOf(options.controlPlane) ? 'control plane' : 'Consul'}, left as is`);
      continue;
    }
    if (`${name}${SUFFIX}` in services) {
      notes.push(describeOutcome({ what, status: 'already-injected' }));
      continue;
    }
    const network = typeof service.network_mode === 'string' ? networkModeProblem(service.network_mode) : undefined;
    if (network) {
      throw new InjectError(network.code, document, field('network_mode'),
        `a service with network_mode "${service.network_mode}" ${network.detail}; label it ${ANNOTATIONS.inject}: "false" to leave it out`);
    }
    const replicas = isObj(service.deploy) ? service.deploy.replicas : service.scale;
    if (typeof replicas === 'number' && replicas > 1) {
      throw new InjectError('invalid-field', document, field(isObj(service.deploy) ? 'deploy.replicas' : 'scale'),
        `a sidecar joins one container's network namespace, so a service with ${replicas} replicas would share one sidecar; run one replica per service`);
    }
    const params = composeParams(name, effective, options, document);
    notes.push(describeOutcome({ what, status: 'injected', params }));
    const sidecar = sidecarService(name, params, dependencies, options);
    // With profiles, the sidecar must be started exactly when its app is.
    if (Array.isArray(service.profiles)) sidecar.profiles = service.profiles;
    added.push({ after: name, name: `${name}${SUFFIX}`, value: sidecar });
  }

  for (const { after, name, value } of added) {
    // Each sidecar goes right after its app, so the output reads pair by pair.
    const at = servicesNode.items.findIndex((p) => isScalar(p.key) && p.key.value === after);
    servicesNode.items.splice(at + 1, 0, new Pair(doc.createNode(name), doc.createNode(value)));
  }
  if (added.length > 0 && controlPlane.note) notes.push(controlPlane.note);
  if (added.length > 0 && isNamedVolume(options.composeCaVolume) && !doc.hasIn(['volumes', options.composeCaVolume])) {
    doc.setIn(['volumes', options.composeCaVolume], doc.createNode({}));
  }
  return { output: doc.toString(TO_STRING), notes, warnings: [] };
}

function composeParams(name: string, effective: EffectiveService, options: InjectOptions, document: string): ServiceParams {
  const { labels, labelFields, ports: declared } = effective;
  const serviceName = labels[ANNOTATIONS.service] ?? name;
  const labelled = labels[ANNOTATIONS.service] !== undefined;
  assertSidecarValue('service', serviceName, document, labelled ? labelFields[ANNOTATIONS.service]! : `services.${name}`, labelled ? '' : `; set label ${ANNOTATIONS.service}`);
  if (labels.version !== undefined) assertSidecarValue('version', labels.version, document, labelFields.version!);
  const healthPath = labels[ANNOTATIONS.appHealthPath];
  if (healthPath !== undefined) assertSidecarValue('appHealthPath', healthPath, document, labelFields[ANNOTATIONS.appHealthPath]!);
  for (const { first, last, field } of declared) {
    if (last < first) throw new InjectError('invalid-field', document, field, `the port range ${first}-${last} ends before it starts`);
    assertNotSidecarPort(first, options, document, field, last);
  }
  // The sidecar forwards HTTP and gRPC, over TCP: a UDP or SCTP port is never the app's.
  const tcp = declared.filter((d) => d.protocol === 'tcp');
  let appPort: number;
  let portField: string;
  const label = labels[ANNOTATIONS.appPort];
  if (label !== undefined) {
    portField = labelFields[ANNOTATIONS.appPort]!;
    const wanted = parsePortText(label);
    if (wanted === undefined) throw new InjectError('invalid-field', document, portField, `not a port number (decimal, 1-65535): "${label}"`);
    appPort = wanted;
    const holds = (d: { first: number; last: number }): boolean => d.first <= wanted && wanted <= d.last;
    const other = declared.find(holds);
    if (other && !tcp.some(holds)) {
      throw new InjectError('invalid-field', document, portField, `port ${appPort} is declared ${other.protocol} only (${other.field}), and the sidecar forwards HTTP and gRPC, over TCP`);
    }
  } else {
    if (!tcp[0]) {
      const none = declared[0] ? `no TCP port to infer the app port from (${declared[0].field} is ${declared[0].protocol}; the sidecar forwards HTTP and gRPC, over TCP)` : 'no port to infer the app port from';
      const why = effective.elsewhere ? ` (${effective.elsewhere})` : '';
      throw new InjectError('no-app-port', document, `services.${name}.ports`, `${none}${why}: add expose or ports, or the label ${ANNOTATIONS.appPort}`);
    }
    appPort = tcp[0].first;
    portField = tcp[0].field;
  }
  if (!Number.isInteger(appPort) || appPort < 1 || appPort > 65535) {
    throw new InjectError('invalid-field', document, portField, 'not a port number');
  }
  assertNotSidecarPort(appPort, options, document, portField);
  // No init container in Compose to install the redirect: a service asking for it must not run without it.
  const transparent = labels[ANNOTATIONS.transparent];
  if (transparent !== undefined && switchValue(transparent, document, labelFields[ANNOTATIONS.transparent]!)) {
    throw new InjectError('invalid-field', document, labelFields[ANNOTATIONS.transparent]!,
      `transparent mode is Kubernetes only (an init container installs its iptables rules): in Compose the app calls its sidecar's outbound port ${options.outboundPort} itself; remove the label`);
  }
  const protocol = labels[ANNOTATIONS.appProtocol];
  if (protocol !== undefined && protocol !== 'http' && protocol !== 'grpc') {
    throw new InjectError('invalid-field', document, labelFields[ANNOTATIONS.appProtocol]!, `expected http or grpc, got "${protocol}"`);
  }
  const accessLog = labels[ANNOTATIONS.accessLog];
  return {
    service: serviceName,
    version: labels.version ?? 'v1',
    appPort,
    appProtocol: protocol,
    appHealthPath: healthPath,
    transparent: false,
    redirectPorts: [],
    accessLog: accessLog === undefined ? options.accessLog : accessLogValue(accessLog, document, labelFields[ANNOTATIONS.accessLog]!),
  };
}

function sidecarService(app: string, params: ServiceParams, dependencies: string[], options: InjectOptions): Obj {
  const tokenVariable = `SKEIN_TOKEN_${params.service.toUpperCase().replace(/-/g, '_')}`;
  return {
    image: options.image,
    command: ['sidecar'],
    network_mode: `service:${app}`,
    environment: {
      ...Object.fromEntries(sidecarEnv(params, options)),
      SKEIN_TOKEN: `\${${tokenVariable}:-}`,
      SKEIN_CA_FILE: `${CA_DIR}/ca.crt`,
    },
    volumes: [`${options.composeCaVolume}:${CA_DIR}:ro`],
    depends_on: [...new Set([app, ...dependencies])],
    // Room for the drain (SKEIN_DRAIN_TIMEOUT) before Compose kills the sidecar.
    stop_grace_period: `${options.drainTimeoutSeconds + 5}s`,
    restart: 'unless-stopped',
  };
}
