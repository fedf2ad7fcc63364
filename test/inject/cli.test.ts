/** `skein inject` as a user runs it: a real process from bin/skein.js (built to dist/). */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, test } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const FIXTURES = join(import.meta.dirname, 'fixtures');

function skein(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'skein.js'), ...args], { input, encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('skein inject', () => {
  test('-f - reads stdin and prints the injected manifests; notes go to stderr', () => {
    const input = readFileSync(join(FIXTURES, 'deployment-service.yaml'), 'utf8');
    const r = skein(['inject', '-f', '-', '--image', 'registry.example.com/skein:1.2.3', '--control-plane', 'cp.mesh:15012'], input);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('deployment/orders: injected (service orders, version v1, app port 8080)');
    const sidecar = parse(r.stdout.split('\n---\n')[0]!).spec.template.spec.initContainers[0];
    expect(sidecar.image).toBe('registry.example.com/skein:1.2.3');
    expect(sidecar.env).toContainEqual({ name: 'SKEIN_CONTROL_PLANE', value: 'cp.mesh:15012' });
  });

  test("README's Compose example: the file's control-plane service is where the sidecars go, and stderr says so", () => {
    const r = skein(['inject', '-f', join(FIXTURES, 'compose.yml')]);
    expect(r.status, r.stderr).toBe(0);
    const web = parse(r.stdout).services['web-skein'];
    expect(web.environment.SKEIN_CONTROL_PLANE).toBe('control-plane:15012');
    expect(web.depends_on).toEqual(['web', 'control-plane']);
    expect(r.stderr).toContain('control plane: control-plane:15012 (the service running skein control-plane; --control-plane to change)');
  });

  test('-f FILE with --transparent adds the redirect init container', () => {
    const r = skein(['inject', '-q', '-f', join(FIXTURES, 'list.yaml'), '--transparent', '--redirect-ports', '80,8080']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const init = parse(r.stdout).items[1].spec.template.spec.initContainers;
    expect(init.map((c: { name: string }) => c.name)).toEqual(['skein-init', 'skein-sidecar']);
    expect(init[0].command[2]).toContain('--dport 8080 -j REDIRECT --to-ports 15001');
  });

  test('--access-log gives every injected sidecar an access log on its stdout; a workload\'s skein.io/access-log overrides it, and the note says so', () => {
    const r = skein(['inject', '-f', join(FIXTURES, 'pod-replicaset-annotations.yaml'), '--access-log', 'text']);
    expect(r.status, r.stderr).toBe(0);
    const [pod, replicaSet] = r.stdout.split('\n---\n').map((doc) => parse(doc));
    const accessLog = (spec: { initContainers: Array<{ env: Array<{ name: string; value?: string }> }> }) => spec.initContainers[0]!.env.filter((e) => e.name.startsWith('SKEIN_ACCESS_LOG'));
    expect(accessLog(pod.spec)).toEqual([{ name: 'SKEIN_ACCESS_LOG', value: 'stdout' }, { name: 'SKEIN_ACCESS_LOG_FORMAT', value: 'json' }]);
    expect(accessLog(replicaSet.spec.template.spec)).toEqual([{ name: 'SKEIN_ACCESS_LOG', value: 'stdout' }, { name: 'SKEIN_ACCESS_LOG_FORMAT', value: 'text' }]);
    expect(r.stderr).toContain('pod/debug-users: injected (service users, version v1, app port 3000, access log json)');
    expect(r.stderr).toContain('replicaset/payments-legacy: injected (service payments, version v0, app port 9090, access log text)');
  });

  test('invalid input: exit 1, the document and field named, nothing on stdout', () => {
    const r = skein(['inject', '-f', join(FIXTURES, 'errors', 'host-network.yaml')]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('document 2 (DaemonSet/node-exporter), field spec.template.spec.hostNetwork');
  });

  // The webhook sees only pods, so only what the pod template carries can count, in both.
  test("settings on a Deployment's own metadata are ignored, as by the webhook, and stderr says so even with -q", () => {
    const deployment = (meta: string, podMeta: string) =>
      `apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: orders${meta}}\nspec:\n  selector: {matchLabels: {app: orders}}\n  template:\n    metadata: {labels: {app: orders}${podMeta}}\n    spec: {containers: [{name: app, image: x, ports: [{containerPort: 8080}]}]}\n`;
    const ignored = skein(['inject', '-q', '-f', '-'], deployment(', annotations: {skein.io/inject: "false", skein.io/service: payments}, labels: {version: v2}', ''));
    expect(ignored.status, ignored.stderr).toBe(0);
    expect(parse(ignored.stdout).spec.template.spec.initContainers[0].env).toContainEqual({ name: 'SKEIN_SERVICE', value: 'orders' });
    expect(ignored.stderr).toBe(
      'skein: warning: deployment/orders: metadata.annotations.skein.io/inject, metadata.annotations.skein.io/service, metadata.labels.version are set on the Deployment itself, not on its pod template, and ignored: injection reads spec.template.metadata, all its pods (and the webhook) see; move them there\n',
    );
    // On the template too: nothing to say.
    const both = skein(['inject', '-f', '-'], deployment(', annotations: {skein.io/inject: "false"}', ', annotations: {skein.io/inject: "false"}'));
    expect(both.stderr).toBe('deployment/orders: opted out, left as is\n');
    // A refusal it leads to says so: the Deployment named the service, its pods do not.
    const unnamed = skein(['inject', '-f', '-'], deployment(', annotations: {skein.io/service: orders}', '').replace('{labels: {app: orders}}', '{labels: {tier: web}}'));
    expect(unnamed.status).toBe(1);
    expect(unnamed.stderr).toContain('no service name: set the label app or the annotation skein.io/service (metadata.annotations.skein.io/service is set on the Deployment itself');
  });

  test('skein.io/inject other than "true" or "false" is refused (exit 1), naming the field', () => {
    const r = skein(['inject', '-f', '-'], 'apiVersion: v1\nkind: Pod\nmetadata: {name: o, labels: {app: o}, annotations: {skein.io/inject: "False"}}\nspec: {containers: [{name: a, image: x, ports: [{containerPort: 80}]}]}\n');
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('document 1 (Pod/o), field metadata.annotations.skein.io/inject: expected "true" or "false", got "False"');
  });

  test('usage errors exit 2', () => {
    expect(skein(['inject']).status).toBe(2);
    expect(skein(['inject', '-f', 'x.yaml', '--redirect-ports', 'eighty']).status).toBe(2);
    expect(skein(['inject', '--help']).status).toBe(0);
  });

  // Each of these would go into every injected pod: an image nobody can pull, a control plane the sidecar refuses (exit 2), a ConfigMap that cannot exist.
  test.each([
    ['--image', '', /option '--image <image>' argument '' is invalid\. not an image reference/],
    ['--control-plane', 'no port here', /option '--control-plane <host:port>' argument 'no port here' is invalid\. expected HOST:PORT/],
    ['--consul', 'ftp://consul:8500', /option '--consul <url>' argument .* is invalid/],
    ['--ca-config-map', 'Bad_Name!', /option '--ca-config-map <name>' argument 'Bad_Name!' is invalid\. not a Kubernetes object name/],
    ['--compose-ca-volume', 'ca:/x', /option '--compose-ca-volume <volume>' argument 'ca:\/x' is invalid/],
    ['--redirect-ports', '80,0', /option '--redirect-ports <ports>' argument '80,0' is invalid\. not a port number \(decimal, 1-65535\): 0/],
    ['--redirect-ports', '0x50', /not a port number \(decimal, 1-65535\): 0x50/],
    // `skein sidecar --drain-timeout` takes 0s to 24h: past that every injected sidecar would refuse to start.
    ['--drain-timeout', '86401s', /option '--drain-timeout <seconds>' argument '86401s' is invalid\. .*at most 86400s \(24h\)/],
    ['--drain-timeout', '99999999999999999999', /at most 86400s \(24h\)/],
    // Only the formats skein sidecar writes, or off: a destination (stdout, a file) is not the workload's choice.
    ['--access-log', 'stdout', /option '--access-log <format>' argument 'stdout' is invalid\. Allowed choices are json, text, off\./],
  ])('%s %j is a usage error (exit 2), nothing on stdout', (flag, value, message) => {
    const r = skein(['inject', '-f', join(FIXTURES, 'list.yaml'), flag, value]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
  });

  test('a missing file is a clear error', () => {
    const r = skein(['inject', '-f', join(FIXTURES, 'nope.yaml')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('nope.yaml');
  });
});
