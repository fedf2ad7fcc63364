import { describe, expect, test } from 'vitest';
import { Command } from 'commander';
import { registerSidecar } from '../cli/commands/sidecar.js';
import { DEFAULT_INJECT_OPTIONS } from './options.js';
import { sidecarContainer, type ServiceParams } from './sidecar-container.js';

const params: ServiceParams = { service: 'orders', version: 'v2', appPort: 8080, appProtocol: 'grpc', appHealthPath: '/healthz', transparent: false, redirectPorts: [], accessLog: 'off' };

describe('the injected sidecar container', () => {
  test('every variable it sets is one `skein sidecar` reads (SPEC §3 names)', () => {
    const program = new Command();
    registerSidecar(program);
    const sidecar = program.commands.find((c) => c.name() === 'sidecar')!;
    // CONSUL_HTTP_ADDR is --consul's fallback after SKEIN_CONSUL (Consul's own variable).
    const known = new Set([...sidecar.options.map((o) => o.envVar).filter(Boolean), 'CONSUL_HTTP_ADDR']);
    expect(known.has('SKEIN_CONSUL')).toBe(true);
    const env = sidecarContainer({ ...params, accessLog: 'json' }, { ...DEFAULT_INJECT_OPTIONS, consul: 'http://consul:8500' }).env!.map((e) => e.name);
    expect(env).toEqual(expect.arrayContaining(['SKEIN_SERVICE', 'SKEIN_APP_PORT', 'SKEIN_CONTROL_PLANE', 'SKEIN_TOKEN', 'SKEIN_CA_FILE', 'CONSUL_HTTP_ADDR', 'SKEIN_ACCESS_LOG', 'SKEIN_ACCESS_LOG_FORMAT']));
    expect(env.filter((name) => !known.has(name))).toEqual([]);
  });

  test('runs `skein sidecar` as a native sidecar, non-root, with probes on the admin port', () => {
    const c = sidecarContainer(params, { ...DEFAULT_INJECT_OPTIONS, adminPort: 16000, image: 'registry.example.com/skein:9' });
    expect(c).toMatchObject({ image: 'registry.example.com/skein:9', restartPolicy: 'Always', args: ['sidecar'] });
    expect(c.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1337, allowPrivilegeEscalation: false });
    expect(c.readinessProbe?.exec?.command?.join(' ')).toContain('http://127.0.0.1:16000/ready');
    // The app starts once its calls can go through, with room for a control plane down at start.
    expect(c.startupProbe?.exec?.command?.join(' ')).toContain("'http://127.0.0.1:16000/ready/outbound'");
    expect(c.startupProbe).toMatchObject({ periodSeconds: 1, failureThreshold: 600 });
    expect(c.lifecycle?.preStop?.exec?.command?.join(' ')).toContain("'http://127.0.0.1:16000/drain',{method:'POST'}");
    expect(c.env).toContainEqual({ name: 'SKEIN_TOKEN', valueFrom: { secretKeyRef: { name: 'skein-token-orders', key: 'token' } } });
  });

  test('an access log goes to stdout in the format asked for; off sets nothing, leaving the sidecar at its default (none)', () => {
    const accessLogEnv = (accessLog: ServiceParams['accessLog']) => sidecarContainer({ ...params, accessLog }, DEFAULT_INJECT_OPTIONS).env!.filter((e) => e.name.startsWith('SKEIN_ACCESS_LOG'));
    expect(accessLogEnv('json')).toEqual([{ name: 'SKEIN_ACCESS_LOG', value: 'stdout' }, { name: 'SKEIN_ACCESS_LOG_FORMAT', value: 'json' }]);
    expect(accessLogEnv('text')).toEqual([{ name: 'SKEIN_ACCESS_LOG', value: 'stdout' }, { name: 'SKEIN_ACCESS_LOG_FORMAT', value: 'text' }]);
    expect(accessLogEnv('off')).toEqual([]);
  });
});
