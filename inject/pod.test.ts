import { describe, expect, test } from 'vitest';
import { thrown } from '../test/support/thrown.js';
import { InjectError } from './errors.js';
import { DEFAULT_INJECT_OPTIONS, type InjectOptions } from './options.js';
import { injectPodTemplate, type PodResult } from './pod.js';

type Obj = Record<string, any>;

function pod(overrides: { labels?: Obj; annotations?: Obj; spec?: Obj } = {}, options: InjectOptions = DEFAULT_INJECT_OPTIONS): PodResult {
  return injectPodTemplate(
    {
      metadata: { labels: overrides.labels ?? { app: 'orders' }, annotations: overrides.annotations },
      spec: overrides.spec ?? { containers: [{ name: 'app', image: 'a', ports: [{ containerPort: 8080 }] }] },
      document: 'document 1 (Deployment/orders)',
      field: 'spec.template',
    },
    options,
  );
}

function injected(result: PodResult): { spec: Obj; params: Extract<PodResult, { status: 'injected' }>['params'] } {
  expect(result.status).toBe('injected');
  return result as Extract<PodResult, { status: 'injected' }>;
}


describe('injectPodTemplate', () => {
  test("opting out: the template's annotation, or the pod's own label, as the webhook's objectSelector reads it", () => {
    expect(pod({ annotations: { 'skein.io/inject': 'false' } }).status).toBe('opted-out');
    expect(pod({ labels: { app: 'orders', 'skein.io/inject': 'false' } }).status).toBe('opted-out');
    expect(pod({ labels: { app: 'orders', 'skein.io/inject': 'true' } }).status).toBe('injected');
    expect(pod({ annotations: { 'skein.io/inject': 'true' } }).status).toBe('injected');
  });

  test('skein.io/inject other than "true" or "false" is refused, naming the field, as skein.io/transparent is', () => {
    for (const value of ['False', 'no', '0', 'disabled', '']) {
      const err = thrown(InjectError, () => pod({ annotations: { 'skein.io/inject': value } }));
      expect(err.code).toBe('invalid-field');
      expect(err.message).toBe(`document 1 (Deployment/orders), field spec.template.metadata.annotations.skein.io/inject: expected "true" or "false", got "${value}"`);
    }
    expect(thrown(InjectError, () => pod({ labels: { app: 'orders', 'skein.io/inject': 'no' } })).field).toBe('spec.template.metadata.labels.skein.io/inject');
  });

  test('service name: annotation, then app label, then app.kubernetes.io/name', () => {
    expect(injected(pod({ labels: { app: 'x' }, annotations: { 'skein.io/service': 'orders' } })).params.service).toBe('orders');
    expect(injected(pod({ labels: { 'app.kubernetes.io/name': 'users' } })).params.service).toBe('users');
    expect(thrown(InjectError, () => pod({ labels: { app: 'Orders_1' } })).field).toBe('spec.template.metadata.labels.app');
  });

  test('version from the version label, v1 by default', () => {
    expect(injected(pod()).params.version).toBe('v1');
    expect(injected(pod({ labels: { app: 'orders', version: 'v7' } })).params.version).toBe('v7');
  });

  // Each of these would be written into the sidecar's environment and refused there (exit 2) at every start.
  test('values the sidecar would refuse are refused here, naming the field', () => {
    const long = 'a'.repeat(72);
    expect(thrown(InjectError, () => pod({ annotations: { 'skein.io/service': long } })).message).toBe(
      `document 1 (Deployment/orders), field spec.template.metadata.annotations.skein.io/service: service name "${long}": must be a DNS label: lowercase letters, digits and "-", at most 63 characters`);
    expect(injected(pod({ labels: { app: 'a'.repeat(63) } })).params.service).toBe('a'.repeat(63));
    const version = thrown(InjectError, () => pod({ labels: { app: 'orders', version: '' } }));
    expect([version.field, version.message]).toEqual(['spec.template.metadata.labels.version', expect.stringContaining('version "": must be letters, digits')]);
    expect(thrown(InjectError, () => pod({ labels: { app: 'orders', version: '1.0+build' } })).field).toBe('spec.template.metadata.labels.version');
    const path = thrown(InjectError, () => pod({ annotations: { 'skein.io/app-health-path': 'healthz' } }));
    expect([path.field, path.message]).toEqual(['spec.template.metadata.annotations.skein.io/app-health-path', expect.stringContaining('app health path "healthz": expected a path starting with "/"')]);
  });

  test('a readiness probe path without its slash is the path the kubelet asks for; one the sidecar cannot ask for is refused', () => {
    const probed = (path: string): Obj => ({ containers: [{ name: 'a', image: 'a', ports: [{ containerPort: 8080 }], readinessProbe: { httpGet: { path, port: 8080 } } }] });
    expect(injected(pod({ spec: probed('healthz') })).params.appHealthPath).toBe('/healthz');
    expect(injected(pod({ spec: probed('/ready?deep=1') })).params.appHealthPath).toBe('/ready?deep=1');
    const bad = thrown(InjectError, () => pod({ spec: probed('/a b') }));
    expect(bad.field).toBe('spec.template.spec.containers[0].readinessProbe.httpGet.path');
    expect(bad.message).toContain('set annotation skein.io/app-health-path');
  });

  test('app port: the annotation wins over container ports and is checked', () => {
    expect(injected(pod({ annotations: { 'skein.io/app-port': '9000' } })).params.appPort).toBe(9000);
    expect(thrown(InjectError, () => pod({ annotations: { 'skein.io/app-port': 'http' } })).field).toBe('spec.template.metadata.annotations.skein.io/app-port');
    expect(thrown(InjectError, () => pod({ annotations: { 'skein.io/app-port': '15443' } })).code).toBe('name-conflict');
    expect(thrown(InjectError, () => pod({ annotations: { 'skein.io/app-protocol': 'tcp' } })).message).toContain('expected http or grpc');
  });

  test('ports in annotations are decimal 1-65535 only: no hex, exponent, sign or spaces', () => {
    for (const text of ['0x1F90', '8e3', '+8080', ' 8080', '8080.0', '0', '65536', '']) {
      const err = thrown(InjectError, () => pod({ annotations: { 'skein.io/app-port': text } }));
      expect([err.field, err.message], text).toEqual(['spec.template.metadata.annotations.skein.io/app-port', expect.stringContaining(`not a port number (decimal, 1-65535): "${text}"`)]);
    }
    expect(thrown(InjectError, () => pod({ annotations: { 'skein.io/redirect-ports': '80,0x50' } })).field).toBe('spec.template.metadata.annotations.skein.io/redirect-ports');
    expect(injected(pod({ annotations: { 'skein.io/transparent': 'true', 'skein.io/redirect-ports': '80, 8080' } })).params.redirectPorts).toEqual([80, 8080]);
  });

  test('with the app-port annotation, protocol and health path come from that port, not the first one', () => {
    const containers = (probes: Obj[]): Obj => ({
      containers: [
        { name: 'app', image: 'a', ports: [{ containerPort: 8080, name: 'http' }, { containerPort: 9090, name: 'grpc' }], readinessProbe: probes[0] },
        { name: 'side', image: 'b', ports: [{ containerPort: 9102, name: 'metrics' }], readinessProbe: probes[1] },
      ],
    });
    const at = (port: number | string, path: string): Obj => ({ httpGet: { port, path } });
    const params = (annotation: string, probes: Obj[] = []) => injected(pod({ annotations: { 'skein.io/app-port': annotation }, spec: containers(probes) })).params;
    expect(params('9090').appProtocol).toBe('grpc');
    expect(params('8080').appProtocol).toBeUndefined();
    // By name in the container that declares the port, or by number from any container (they share the network).
    expect(params('8080', [at('grpc', '/grpc-ready'), at(8080, '/by-number')]).appHealthPath).toBe('/by-number');
    expect(params('9090', [at('grpc', '/grpc-ready'), at(8080, '/by-number')]).appHealthPath).toBe('/grpc-ready');
    expect(params('9102', [at('http', '/app-ready'), at('metrics', '/metrics-ready')]).appHealthPath).toBe('/metrics-ready');
    // The kubelet looks a probe's port name up in the probing container only: `side` has no port named http.
    expect(params('8080', [undefined as never, at('http', '/not-resolvable')]).appHealthPath).toBeUndefined();
  });

  test('UDP and SCTP ports are never the app port: skipped when inferring, refused when named', () => {
    const spec = { containers: [{ name: 'dns', image: 'a', ports: [{ containerPort: 53, protocol: 'UDP' }, { containerPort: 9000, protocol: 'SCTP' }, { containerPort: 8080, protocol: 'TCP' }] }] };
    expect(injected(pod({ spec })).params.appPort).toBe(8080);
    const named = thrown(InjectError, () => pod({ spec, annotations: { 'skein.io/app-port': '53' } }));
    expect([named.field, named.message]).toEqual(['spec.template.metadata.annotations.skein.io/app-port',
      expect.stringContaining('port 53 is declared UDP only (spec.template.spec.containers[0].ports[0]), and the sidecar forwards HTTP and gRPC, over TCP')]);
    // A port served over both (DNS on 53) is a TCP port.
    const both = { containers: [{ name: 'dns', image: 'a', ports: [{ containerPort: 53, protocol: 'UDP' }, { containerPort: 53, name: 'dns-tcp' }] }] };
    expect(injected(pod({ spec: both, annotations: { 'skein.io/app-port': '53' } })).params.appPort).toBe(53);
    const udpOnly = thrown(InjectError, () => pod({ spec: { containers: [{ name: 'dns', image: 'a', ports: [{ containerPort: 53, protocol: 'UDP' }] }] } }));
    expect([udpOnly.code, udpOnly.message]).toEqual(['no-app-port', expect.stringContaining('no TCP container port to infer the app port from (spec.template.spec.containers[0].ports[0] is UDP;')]);
  });

  test('the termination grace period is raised to fit the drain, never lowered', () => {
    const spec = (grace?: number): Obj => ({ terminationGracePeriodSeconds: grace, containers: [{ name: 'a', image: 'a', ports: [{ containerPort: 1 }] }] });
    expect(injected(pod({ spec: spec(5) })).spec.terminationGracePeriodSeconds).toBe(15);
    expect(injected(pod({ spec: spec(60) })).spec.terminationGracePeriodSeconds).toBe(60);
    expect(injected(pod({ spec: spec(undefined) })).spec.terminationGracePeriodSeconds).toBeUndefined();
    expect(injected(pod({ spec: spec(5) }, { ...DEFAULT_INJECT_OPTIONS, drainTimeoutSeconds: 40 })).spec.terminationGracePeriodSeconds).toBe(45);
  });

  test('transparent mode: the annotation overrides the option either way', () => {
    const names = (r: PodResult): string[] => injected(r).spec.initContainers.map((c: Obj) => c.name);
    expect(names(pod({}, { ...DEFAULT_INJECT_OPTIONS, transparent: true }))).toEqual(['skein-init', 'skein-sidecar']);
    expect(names(pod({ annotations: { 'skein.io/transparent': 'false' } }, { ...DEFAULT_INJECT_OPTIONS, transparent: true }))).toEqual(['skein-sidecar']);
    expect(names(pod({ annotations: { 'skein.io/transparent': 'true' } }))).toEqual(['skein-init', 'skein-sidecar']);
    expect(thrown(InjectError, () => pod({ annotations: { 'skein.io/redirect-ports': '80,x' } })).code).toBe('invalid-field');
  });

  test('transparent mode refuses an app running as the sidecar\'s uid 1337, whose traffic would skip the redirect', () => {
    const transparent = { ...DEFAULT_INJECT_OPTIONS, transparent: true };
    const app = (securityContext?: Obj): Obj => ({ name: 'app', image: 'a', ports: [{ containerPort: 8080 }], securityContext });
    const podLevel = thrown(InjectError, () => pod({ spec: { securityContext: { runAsUser: 1337 }, containers: [app()] } }, transparent));
    expect([podLevel.code, podLevel.field]).toEqual(['name-conflict', 'spec.template.spec.securityContext.runAsUser']);
    expect(podLevel.message).toContain('transparent mode lets uid 1337 (the sidecar\'s) out without the redirect, so containers[0] running as 1337 would bypass the sidecar');
    expect(thrown(InjectError, () => pod({ annotations: { 'skein.io/transparent': 'true' }, spec: { containers: [app(), { ...app({ runAsUser: 1337 }), name: 'b' }] } })).field)
      .toBe('spec.template.spec.containers[1].securityContext.runAsUser');
    expect(thrown(InjectError, () => pod({ spec: { containers: [app()], initContainers: [{ name: 'migrate', image: 'm', securityContext: { runAsUser: 1337 } }] } }, transparent)).field)
      .toBe('spec.template.spec.initContainers[0].securityContext.runAsUser');
    // A container's own uid wins over the pod's; without transparent mode nothing is redirected, so 1337 is the app's business.
    expect(injected(pod({ spec: { securityContext: { runAsUser: 1337 }, containers: [app({ runAsUser: 1000 })] } }, transparent)).params.transparent).toBe(true);
    expect(injected(pod({ spec: { securityContext: { runAsUser: 1337 }, containers: [app()] } })).params.transparent).toBe(false);
  });

  test('transparent: only "true" or "false"; anything else is refused, not taken as false', () => {
    for (const value of ['yes', 'True', '1', '']) {
      const err = thrown(InjectError, () => pod({ annotations: { 'skein.io/transparent': value } }));
      expect([err.field, err.message], value).toEqual(['spec.template.metadata.annotations.skein.io/transparent', expect.stringContaining(`expected "true" or "false", got "${value}"`)]);
    }
  });

  test('access log: the annotation overrides --access-log either way, and the sidecar logs to stdout in that format', () => {
    const accessLogEnv = (r: PodResult): Obj[] => injected(r).spec.initContainers[0].env.filter((e: Obj) => e.name.startsWith('SKEIN_ACCESS_LOG'));
    expect(accessLogEnv(pod())).toEqual([]);
    expect(accessLogEnv(pod({ annotations: { 'skein.io/access-log': 'text' } }))).toEqual([{ name: 'SKEIN_ACCESS_LOG', value: 'stdout' }, { name: 'SKEIN_ACCESS_LOG_FORMAT', value: 'text' }]);
    expect(accessLogEnv(pod({}, { ...DEFAULT_INJECT_OPTIONS, accessLog: 'json' }))).toEqual([{ name: 'SKEIN_ACCESS_LOG', value: 'stdout' }, { name: 'SKEIN_ACCESS_LOG_FORMAT', value: 'json' }]);
    expect(accessLogEnv(pod({ annotations: { 'skein.io/access-log': 'off' } }, { ...DEFAULT_INJECT_OPTIONS, accessLog: 'json' }))).toEqual([]);
    expect(injected(pod({ annotations: { 'skein.io/access-log': 'json' } }, { ...DEFAULT_INJECT_OPTIONS, accessLog: 'text' })).params.accessLog).toBe('json');
  });

  test('access log: only "json", "text" or "off"; anything else is refused, naming the field, not taken as off', () => {
    for (const value of ['JSON', 'yes', 'stdout', 'true', '']) {
      const err = thrown(InjectError, () => pod({ annotations: { 'skein.io/access-log': value } }, { ...DEFAULT_INJECT_OPTIONS, accessLog: 'json' }));
      expect([err.code, err.message], value).toEqual(['invalid-field',
        `document 1 (Deployment/orders), field spec.template.metadata.annotations.skein.io/access-log: expected one of "json", "text", "off", got "${value}"`]);
    }
  });

  test('Skein names taken by the workload are refused, not overwritten', () => {
    const taken = thrown(InjectError, () => pod({ spec: { containers: [{ name: 'skein-sidecar', image: 'a', ports: [{ containerPort: 1 }] }] } }));
    expect(taken.field).toBe('spec.template.spec.containers[0].name');
    const volume = thrown(InjectError, () => pod({ spec: { containers: [{ name: 'a', image: 'a', ports: [{ containerPort: 1 }] }], volumes: [{ name: 'skein-bootstrap', emptyDir: {} }] } }));
    expect(volume.field).toBe('spec.template.spec.volumes[0].name');
  });

  test('the input is not changed', () => {
    const spec = { containers: [{ name: 'app', image: 'a', ports: [{ containerPort: 8080 }] }], initContainers: [{ name: 'migrate', image: 'm' }] };
    const before = structuredClone(spec);
    const result = injected(pod({ spec }));
    expect(spec).toEqual(before);
    expect(result.spec.initContainers.map((c: Obj) => c.name)).toEqual(['skein-sidecar', 'migrate']);
  });
});
