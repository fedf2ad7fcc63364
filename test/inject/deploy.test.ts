/**
 * deploy/ checked offline: the Kubernetes manifests parse and validate against the API
 * schemas and agree with each other and with the CLI; the Compose file is what `skein inject`
 * makes of app.yml, validates against the compose-spec schema and references only services,
 * volumes and images that exist; the Dockerfile is checked statically (no Docker engine here):
 * stages, pinned bases, non-root USER, COPY sources present in the repository.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Command } from 'commander';
import { DockerfileParser, type Instruction } from 'dockerfile-ast';
import { parse, parseAllDocuments } from 'yaml';
import { describe, expect, test } from 'vitest';
import { registerControlPlane } from '../../cli/commands/control-plane.js';
import { injectText } from '../../inject/inject-text.js';
import { DEFAULT_INJECT_OPTIONS, SIDECAR_UID } from '../../inject/options.js';
import { INJECT_PATH } from '../../inject/webhook-server.js';
import { validateCompose } from './compose-schema.js';
import { validateKubernetesObject } from './kubernetes-schema.js';

const ROOT = join(import.meta.dirname, '..', '..');
const K8S = join(ROOT, 'deploy', 'k8s');
type Obj = Record<string, any>;

function k8sObjects(): Array<{ file: string; obj: Obj }> {
  return readdirSync(K8S)
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((file) => {
      const docs = parseAllDocuments(readFileSync(join(K8S, file), 'utf8'));
      for (const d of docs) expect(d.errors, file).toEqual([]);
      return docs.map((d) => ({ file, obj: d.toJS() as Obj }));
    });
}

function find(kind: string, name: string): Obj {
  const hit = k8sObjects().find(({ obj }) => obj.kind === kind && obj.metadata?.name === name);
  expect(hit, `${kind}/${name} in deploy/k8s`).toBeDefined();
  return hit!.obj;
}

describe('deploy/k8s', () => {
  test('every manifest validates against the Kubernetes schemas', async () => {
    const objects = k8sObjects();
    expect(objects.map((o) => o.obj.kind)).toEqual(expect.arrayContaining(['Namespace', 'Deployment', 'Service', 'ServiceAccount', 'ClusterRole', 'MutatingWebhookConfiguration']));
    for (const { file, obj } of objects) await validateKubernetesObject(obj, `${file} ${obj.kind}/${obj.metadata?.name}`);
  });

  test('the control plane runs two replicas on the Consul store, with flags `skein control-plane` knows', () => {
    const deployment = find('Deployment', 'skein-control-plane');
    expect(deployment.spec.replicas).toBe(2);
    const container = deployment.spec.template.spec.containers[0];
    expect(container.args[0]).toBe('control-plane');
    expect(container.args).toContain('--store=consul');
    const program = new Command();
    registerControlPlane(program);
    const known = new Set(program.commands[0]!.options.map((o) => o.long));
    const unknown = (container.args as string[]).slice(1).map((a) => a.split('=')[0]).filter((flag) => !known.has(flag));
    expect(unknown).toEqual([]);
  });

  test('the webhook reaches the control plane Service on a TLS port the container serves', () => {
    const webhook = find('MutatingWebhookConfiguration', 'skein-injector').webhooks[0];
    expect(webhook.admissionReviewVersions).toEqual(['v1']);
    expect(webhook.namespaceSelector.matchLabels).toEqual({ 'skein.io/injection': 'enabled' });
    expect(webhook.clientConfig.service.path).toBe(INJECT_PATH);
    const service = find('Service', webhook.clientConfig.service.name);
    expect(service.metadata.namespace).toBe(webhook.clientConfig.service.namespace);
    const port = service.spec.ports.find((p: Obj) => p.port === webhook.clientConfig.service.port);
    const container = find('Deployment', 'skein-control-plane').spec.template.spec.containers[0];
    const containerPort = container.ports.find((p: Obj) => p.name === port.targetPort).containerPort;
    expect(container.args).toContain(`--webhook-port=${containerPort}`);
    // The address injected sidecars dial is this Service's gRPC port.
    const grpc = service.spec.ports.find((p: Obj) => p.name === 'grpc').port;
    expect(container.args).toContain(`--inject-control-plane=${service.metadata.name}.${service.metadata.namespace}.svc:${grpc}`);
  });

  test('the demo namespace opts in, and every demo workload injects into a valid object', async () => {
    const text = readFileSync(join(K8S, 'demo.yaml'), 'utf8');
    expect(find('Namespace', 'skein-demo').metadata.labels['skein.io/injection']).toBe('enabled');
    const result = injectText(text, DEFAULT_INJECT_OPTIONS);
    const injected = result.notes.filter((n) => n.includes(': injected'));
    expect(injected).toHaveLength(8);
    for (const doc of parseAllDocuments(result.output)) await validateKubernetesObject(doc.toJS(), 'injected demo');
    // Apps must not run as the sidecar's uid: transparent mode lets that uid's traffic out unredirected.
    for (const doc of parseAllDocuments(text).map((d) => d.toJS() as Obj).filter((o) => o.kind === 'Deployment')) {
      expect(doc.spec.template.spec.securityContext.runAsUser).not.toBe(SIDECAR_UID);
    }
  });

  test('the webhook is never called for the control plane\'s own pods nor kube-system\'s, even in a namespace labelled for injection', () => {
    // With failurePolicy Fail, a call to a webhook no replica answers refuses the pod: the pods
    // the webhook needs to come back (its own, and DNS) must be filtered out by the API server.
    const webhook = find('MutatingWebhookConfiguration', 'skein-injector').webhooks[0];
    expect(webhook.failurePolicy).toBe('Fail');
    const matches = (selector: Obj, labels: Record<string, string>): boolean =>
      Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v)
      && (selector.matchExpressions ?? []).every((e: Obj) => {
        const has = e.key in labels;
        switch (e.operator) {
          case 'In': return has && e.values.includes(labels[e.key]);
          case 'NotIn': return !has || !e.values.includes(labels[e.key]);
          case 'Exists': return has;
          default: return !has;
        }
      });
    const enrolled = (ns: string): Record<string, string> => ({ 'kubernetes.io/metadata.name': ns, 'skein.io/injection': 'enabled' });
    expect(matches(webhook.namespaceSelector, enrolled('skein-demo'))).toBe(true);
    expect(matches(webhook.namespaceSelector, enrolled('kube-system'))).toBe(false);
    const controlPlane = find('Deployment', 'skein-control-plane');
    const calledFor = matches(webhook.namespaceSelector, enrolled(controlPlane.metadata.namespace)) && matches(webhook.objectSelector, controlPlane.spec.template.metadata.labels);
    expect(calledFor).toBe(false);
  });

  test('bootstrap.sh is valid shell', () => {
    const r = spawnSync('sh', ['-n', join(K8S, 'bootstrap.sh')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  });
});

describe('deploy/compose', () => {
  const dir = join(ROOT, 'deploy', 'compose');
  const composeText = readFileSync(join(dir, 'docker-compose.yml'), 'utf8');
  const compose = parse(composeText) as Obj;

  test('docker-compose.yml is app.yml injected (no drift)', () => {
    const options = { ...DEFAULT_INJECT_OPTIONS, controlPlane: 'control-plane:15012', consul: 'http://consul:8500' };
    expect(injectText(readFileSync(join(dir, 'app.yml'), 'utf8'), options).output).toBe(composeText);
  });

  test('validates against the compose-spec schema', () => {
    validateCompose(compose);
    expect(() => validateCompose({ services: { web: { image: 'x', network_mode: 5 } } })).toThrow(/network_mode/);
  });

  test('references only services, volumes and images that exist', () => {
    const services = compose.services as Record<string, Obj>;
    const names = new Set(Object.keys(services));
    const volumes = new Set(Object.keys(compose.volumes ?? {}));
    const built = new Map<string, Obj>();
    for (const s of Object.values(services)) if (s.build) built.set(s.image, s.build);
    for (const [name, s] of Object.entries(services)) {
      const deps = Array.isArray(s.depends_on) ? s.depends_on : Object.keys(s.depends_on ?? {});
      for (const d of deps) expect(names.has(d), `${name} depends_on ${d}`).toBe(true);
      if (typeof s.network_mode === 'string' && s.network_mode.startsWith('service:')) expect(names.has(s.network_mode.slice(8)), `${name} network_mode`).toBe(true);
      for (const v of s.volumes ?? []) {
        const source = String(v).split(':')[0]!;
        if (!source.startsWith('.') && !source.startsWith('/')) expect(volumes.has(source), `${name} volume ${source}`).toBe(true);
      }
      // An image is either built here or a pinned public one.
      if (!built.has(s.image)) expect(s.image, `${name} image`).toMatch(/^[a-z0-9./-]+:(?!latest$)[\w.-]+$/);
    }
    for (const build of built.values()) {
      const context = join(dir, build.context);
      expect(existsSync(join(context, build.dockerfile)), 'build.dockerfile').toBe(true);
    }
    // Every app has its sidecar, sharing its network namespace.
    for (const [name, s] of Object.entries(services)) {
      if (s.labels?.['skein.io/inject'] === 'false' || name.endsWith('-skein')) continue;
      expect(services[`${name}-skein`]?.network_mode).toBe(`service:${name}`);
    }
  });

  test('a service running the image as its non-root user can write to the named volumes it mounts read-write', () => {
    // Docker creates a named volume root-owned unless the first container to mount it has the
    // mount path in its image (then the volume takes that directory's owner): so every mount of
    // such a volume must be at a directory the Dockerfile makes the runtime user's.
    const dockerfile = readFileSync(join(ROOT, 'deploy', 'Dockerfile'), 'utf8');
    const owned = new Set([...dockerfile.matchAll(/chown (\d+):\d+ ([^\n\\&]+)/g)].filter((m) => m[1] === String(SIDECAR_UID)).flatMap((m) => m[2]!.trim().split(/\s+/)));
    expect(owned.size).toBeGreaterThan(0);
    const services = compose.services as Record<string, Obj>;
    const named = new Set(Object.keys(compose.volumes ?? {}));
    const mounts = Object.entries(services).flatMap(([name, s]) => (s.volumes ?? []).map((v: unknown) => {
      const [source, target, mode] = String(v).split(':');
      return { name, service: s, source: source!, target: target!, readOnly: mode === 'ro' };
    })).filter((m) => named.has(m.source));
    for (const m of mounts) {
      if (m.readOnly || m.service.image !== 'skein:0.1.0' || m.service.user !== undefined) continue;
      for (const other of mounts.filter((o) => o.source === m.source)) {
        expect(owned.has(other.target), `${m.name} writes to volume ${m.source} as uid ${SIDECAR_UID}, but ${other.name} mounts it at ${other.target}, which the image does not create owned by ${SIDECAR_UID}`).toBe(true);
      }
    }
  });
});

describe('deploy/Dockerfile (static: no Docker engine on this machine)', () => {
  const text = readFileSync(join(ROOT, 'deploy', 'Dockerfile'), 'utf8');
  const dockerfile = DockerfileParser.parse(text);
  const args = (i: Instruction): string[] => i.getArguments().map((a) => a.getValue());

  test('multi-stage, pinned bases, the runtime stage last', () => {
    const froms = dockerfile.getFROMs();
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const f of froms) expect(f.getImageTag(), f.getImageName() ?? '').toMatch(/^\d/);
    expect(froms.at(-1)!.getBuildStage()).toBe('runtime');
  });

  test('runs as the non-root sidecar uid, with skein as the entrypoint', () => {
    const runtimeStart = dockerfile.getFROMs().at(-1)!.getRange().start.line;
    const runtime = dockerfile.getInstructions().filter((i) => i.getRange().start.line > runtimeStart);
    const users = runtime.filter((i) => i.getKeyword() === 'USER');
    expect(users).toHaveLength(1);
    expect(args(users[0]!)[0]).toBe(`${SIDECAR_UID}:${SIDECAR_UID}`);
    const entrypoint = runtime.find((i) => i.getKeyword() === 'ENTRYPOINT')!;
    expect(JSON.parse(args(entrypoint).join(' '))).toEqual(['node', '/app/bin/skein.js']);
    expect(existsSync(join(ROOT, 'bin', 'skein.js'))).toBe(true);
  });

  test('COPY sources exist in the repository or an earlier stage, and are not excluded from the context', () => {
    const stages = new Set<string>();
    const ignored = readFileSync(join(ROOT, 'deploy', 'Dockerfile.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    for (const i of dockerfile.getInstructions()) {
      const keyword = i.getKeyword();
      if (keyword === 'FROM') {
        const stage = args(i)[2];
        if (stage) stages.add(stage);
      }
      if (keyword !== 'COPY') continue;
      const from = (i as unknown as { getFlags(): Array<{ getName(): string; getValue(): string }> }).getFlags().find((f) => f.getName() === 'from');
      const sources = args(i).slice(0, -1);
      if (from) {
        expect(stages.has(from.getValue()), `COPY --from=${from.getValue()}`).toBe(true);
        continue;
      }
      for (const source of sources) {
        expect(existsSync(join(ROOT, source)), `COPY ${source}`).toBe(true);
        expect(ignored, `COPY ${source} is in Dockerfile.dockerignore`).not.toContain(source);
      }
    }
    // Everything the CLI needs at run time is compiled in.
    for (const folder of ['common', 'sidecar', 'control-plane', 'cli', 'inject', 'demo-services']) expect(text).toContain(`COPY ${folder} ./${folder}`);
  });

  test('every module the build stage compiles imports only modules the build stage copies (tsc would fail)', () => {
    // The build stage's `COPY folder ./folder` lines, minus what the context leaves out (tests).
    const copied = [...text.matchAll(/^COPY (?!--)(\S+) \.\/\1\s*$/gm)].map((m) => m[1]!);
    const missing: string[] = [];
    const walk = (dir: string): string[] => readdirSync(join(ROOT, dir), { withFileTypes: true })
      .flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [join(dir, e.name)] : []));
    for (const file of copied.filter((c) => !c.includes('.')).flatMap(walk)) {
      const source = readFileSync(join(ROOT, file), 'utf8');
      for (const [, spec] of source.matchAll(/(?:from|import\()\s*'(\.{1,2}\/[^']+)'/g)) {
        const target = join(dirname(file), spec!).replace(/\.js$/, '.ts');
        if (!copied.includes(target.split('/')[0]!)) missing.push(`${file} imports ${spec}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
