import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { thrown } from '../test/support/thrown.js';
import { InjectError } from './errors.js';
import { injectText } from './inject-text.js';
import { DEFAULT_INJECT_OPTIONS, type InjectOptions } from './options.js';

type Sidecar = { environment: Record<string, string>; depends_on: string[] };

function inject(compose: string, controlPlane = DEFAULT_INJECT_OPTIONS.controlPlane): { sidecar: Sidecar; notes: string[] } {
  const result = injectText(compose, { ...DEFAULT_INJECT_OPTIONS, controlPlane });
  return { sidecar: (parse(result.output) as { services: Record<string, Sidecar> }).services['web-skein']!, notes: result.notes };
}


const WEB = `  web:\n    image: shop/web:1\n    expose: ["80"]\n`;

describe('Compose: where the sidecars find the control plane', () => {
  it('uses the service of the file that runs skein control-plane, at its --grpc-port, and depends on it', () => {
    const { sidecar, notes } = inject(`services:\n  mesh:\n    image: skein:0.1.0\n    command: [control-plane, --data-dir=/data, --grpc-port=16012]\n    labels: {skein.io/inject: "false"}\n${WEB}`);
    expect(sidecar.environment.SKEIN_CONTROL_PLANE).toBe('mesh:16012');
    expect(sidecar.depends_on).toEqual(['web', 'mesh']);
    expect(notes).toContain('control plane: mesh:16012 (the service running skein control-plane; --control-plane to change)');
  });

  it('leaves the control-plane service itself without a sidecar, even unlabelled', () => {
    const result = injectText(`services:\n  mesh:\n    image: skein:0.1.0\n    command: [control-plane]\n    ports: ["15080:15080"]\n${WEB}`, DEFAULT_INJECT_OPTIONS);
    const services = (parse(result.output) as { services: Record<string, Sidecar> }).services;
    expect(Object.keys(services)).toEqual(['mesh', 'web', 'web-skein']);
    expect(services['web-skein']!.depends_on).toEqual(['web', 'mesh']);
    expect(result.notes).toContain("service/mesh: the mesh's own control plane, left as is");
  });

  it('reads a command written as one string, with the default gRPC port', () => {
    const { sidecar } = inject(`services:\n  cp:\n    image: skein:0.1.0\n    command: control-plane --data-dir /data\n    labels: {skein.io/inject: "false"}\n${WEB}`);
    expect(sidecar.environment.SKEIN_CONTROL_PLANE).toBe('cp:15012');
  });

  it('keeps the Kubernetes default without such a service, and says so', () => {
    const { sidecar, notes } = inject(`services:\n${WEB}`);
    expect(sidecar.environment.SKEIN_CONTROL_PLANE).toBe(DEFAULT_INJECT_OPTIONS.controlPlane);
    expect(sidecar.depends_on).toEqual(['web']);
    expect(notes.join('\n')).toMatch(/the Kubernetes default, as no service in this file runs skein control-plane; pass --control-plane/);
  });

  it('takes --control-plane as given, without a note', () => {
    const { sidecar, notes } = inject(`services:\n  mesh:\n    command: [control-plane]\n    labels: {skein.io/inject: "false"}\n${WEB}`, 'cp.example:15012');
    expect(sidecar.environment.SKEIN_CONTROL_PLANE).toBe('cp.example:15012');
    expect(notes.some((n) => n.includes('control plane'))).toBe(false);
  });
});

describe("Compose: ports the sidecar uses, in ranges too", () => {
  const compose = (ports: string): string => `services:\n  web:\n    image: shop/web:1\n    ports: ["8080:80", ${ports}]\n`;
  const refusal = (text: string): string => {
    try {
      injectText(text, DEFAULT_INJECT_OPTIONS);
    } catch (err) {
      return (err as Error).message;
    }
    throw new Error('injected without complaint');
  };

  it('refuses a range that holds a sidecar port past its first, naming the service, the entry and the port', () => {
    expect(refusal(compose('"14990-15005:14990-15005"'))).toBe(
      'document 1, field services.web.ports[1]: the port range 14990-15005 includes port 15000, which is used by the sidecar (its admin port)');
    expect(refusal(compose('"127.0.0.1:15440-15450:15440-15450/tcp"'))).toMatch(/services\.web\.ports\[1\]: the port range 15440-15450 includes port 15443, .*its inbound port/);
    expect(refusal(`services:\n  web:\n    image: shop/web:1\n    expose: ["80", "15001-15002"]\n`)).toMatch(/services\.web\.expose\[1\]: the port range 15001-15002 includes port 15001, .*its outbound port/);
  });

  it('checks a whole large range without trouble, and accepts one clear of the sidecar ports', () => {
    expect(refusal(compose('"1-65535"'))).toMatch(/the port range 1-65535 includes port 15000, .*its admin port/);
    const result = injectText(compose('"15002-15442:15002-15442"'), DEFAULT_INJECT_OPTIONS);
    expect(Object.keys((parse(result.output) as { services: object }).services)).toEqual(['web', 'web-skein']);
  });

  it('looks at the container side only, and still names a single port', () => {
    expect(() => injectText(compose('"15000-15010:8000-8010"'), DEFAULT_INJECT_OPTIONS)).not.toThrow();
    expect(refusal(compose('"9000:15001"'))).toBe('document 1, field services.web.ports[1]: port 15001 is used by the sidecar (its outbound port)');
  });

  it('refuses a range that ends before it starts', () => {
    expect(refusal(compose('"15010-15000:15010-15000"'))).toMatch(/services\.web\.ports\[1\]: the port range 15010-15000 ends before it starts/);
  });
});

describe('Compose: values the sidecar would refuse at start are refused, naming the service and label', () => {
  const refusal = (service: string): string => {
    try {
      injectText(`services:\n${service}`, DEFAULT_INJECT_OPTIONS);
    } catch (err) {
      return (err as Error).message;
    }
    throw new Error('injected without complaint');
  };

  it('an empty or malformed version, a health path without its slash, a service name past 63 characters', () => {
    expect(refusal(`${WEB}    labels: {version: ""}\n`)).toBe('document 1, field services.web.labels.version: version "": must be letters, digits, "-", "_" or "."');
    expect(refusal(`${WEB}    labels: ["skein.io/app-health-path=healthz"]\n`)).toMatch(/^document 1, field services\.web\.labels\.skein\.io\/app-health-path: app health path "healthz": expected a path starting with "\/"/);
    expect(refusal(`  ${'a'.repeat(64)}:\n    image: x\n    expose: ["80"]\n`)).toMatch(/field services\.a{64}: service name "a{64}": must be a DNS label: .*at most 63 characters; set label skein\.io\/service$/);
    expect(refusal(`${WEB}    labels: {skein.io/service: Web}\n`)).toMatch(/field services\.web\.labels\.skein\.io\/service: service name "Web": must be a DNS label/);
  });
});

const appPort = (service: string): string => (parse(injectText(`services:\n  web:\n    image: x\n${service}`, DEFAULT_INJECT_OPTIONS).output) as { services: Record<string, Sidecar> }).services['web-skein']!.environment.SKEIN_APP_PORT!;

describe('Compose: UDP and SCTP ports are never the app port', () => {
  it('skips them when inferring, in short and long syntax', () => {
    expect(appPort('    expose: ["53/udp", "8053"]\n')).toBe('8053');
    expect(appPort('    ports: ["53:53/udp", {target: 5353, protocol: udp}, "8080:80/tcp"]\n')).toBe('80');
    expect(appPort('    expose: ["53/udp"]\n    ports: ["8080:80"]\n')).toBe('80');
  });

  it('refuses a label naming one, and a service with no TCP port', () => {
    expect(() => appPort('    ports: ["53:53/udp", "8080:80"]\n    labels: {skein.io/app-port: "53"}\n')).toThrow(
      'document 1, field services.web.labels.skein.io/app-port: port 53 is declared udp only (services.web.ports[0]), and the sidecar forwards HTTP and gRPC, over TCP');
    expect(() => appPort('    ports: ["53:53/udp"]\n')).toThrow(/field services\.web\.ports: no TCP port to infer the app port from \(services\.web\.ports\[0\] is udp;/);
  });
});

describe('Compose: the app-port label', () => {
  it('is a decimal port, 1-65535', () => {
    expect(appPort('    ports: ["8080:80"]\n    labels: {skein.io/app-port: "8081"}\n')).toBe('8081');
    expect(() => appPort('    ports: ["8080:80"]\n    labels: {skein.io/app-port: "0x1F90"}\n')).toThrow(
      'document 1, field services.web.labels.skein.io/app-port: not a port number (decimal, 1-65535): "0x1F90"');
  });
});

describe('Compose: network_mode', () => {
  const injectWeb = (mode: string): string[] => Object.keys((parse(injectText(`services:\n${WEB}    network_mode: ${mode}\n  db:\n    image: postgres:16\n    labels: ["skein.io/inject=false"]\n`, DEFAULT_INJECT_OPTIONS).output) as { services: object }).services);

  it('injects a bridge service: it has a network namespace of its own, as with no network_mode', () => {
    expect(injectWeb('bridge')).toEqual(['web', 'web-skein', 'db']);
  });

  it.each([
    ['host', 'host-network', `shares the host's network namespace, where the sidecar's ports are the host's`],
    ['none', 'invalid-field', 'has no network: its sidecar could reach neither the control plane nor the other sidecars'],
    ['"service:db"', 'invalid-field', 'joins the network namespace of service db instead of having its own for a sidecar'],
    ['"container:legacy-1"', 'invalid-field', 'joins the network namespace of container legacy-1 instead of having its own for a sidecar'],
  ])('refuses %s, saying why', (mode, code, why) => {
    let error: InjectError | undefined;
    try {
      injectWeb(mode);
    } catch (err) {
      error = err as InjectError;
    }
    expect(error).toBeInstanceOf(InjectError);
    expect([error!.code, error!.message]).toEqual([code,
      `document 1, field services.web.network_mode: a service with network_mode "${mode.replace(/"/g, '')}" ${why}; label it skein.io/inject: "false" to leave it out`]);
  });
});

describe('Compose: skein.io/inject', () => {
  it('skein.io/inject other than "true" or "false" is refused, naming the label', () => {
    expect(thrown(InjectError, () => injectText(`services:\n  web:\n    image: x\n    expose: ["80"]\n    labels: ["skein.io/inject=no"]\n`, DEFAULT_INJECT_OPTIONS)).message).toBe(
      'document 1, field services.web.labels.skein.io/inject: expected "true" or "false", got "no"',
    );
  });
});

describe('Compose: extends', () => {
  const services = (result: { output: string }) => (parse(result.output) as { services: Record<string, Sidecar> }).services;

  it('a service extending one of the same file gets its ports and labels, its own winning', () => {
    const result = injectText(
      'services:\n  base:\n    image: shop/web:1\n    expose: ["8080"]\n    labels: {version: v2, skein.io/app-protocol: grpc}\n    profiles: [never]\n'
      + '  web:\n    extends: {service: base}\n    labels: {version: v3}\n    profiles: []\n  api:\n    extends: base\n    labels: {skein.io/inject: "false"}\n',
      DEFAULT_INJECT_OPTIONS,
    );
    const web = services(result)['web-skein']!.environment;
    expect([web.SKEIN_APP_PORT, web.SKEIN_VERSION, web.SKEIN_APP_PROTOCOL]).toEqual(['8080', 'v3', 'grpc']);
    expect(services(result)['api-skein']).toBeUndefined();
  });

  it('errors name the service a setting is inherited from; a missing or looping base is refused', () => {
    const refused = (compose: string) => thrown(InjectError, () => injectText(compose, DEFAULT_INJECT_OPTIONS)).message;
    expect(refused('services:\n  base:\n    image: x\n    labels: {skein.io/app-port: "80", version: "v 1"}\n  web:\n    extends: {service: base}\n    expose: ["80"]\n'))
      .toMatch(/^document 1, field services\.base\.labels\.version: /);
    expect(refused('services:\n  web:\n    image: x\n    extends: {service: nope}\n')).toBe('document 1, field services.web.extends: extends "nope", which is not a service of this file');
    expect(refused('services:\n  a:\n    extends: b\n  b:\n    extends: a\n')).toBe('document 1, field services.b.extends: extends leads back to a');
  });

  it('one naming another file is not read, and the error it may explain names it', () => {
    expect(thrown(InjectError, () => injectText('services:\n  web:\n    extends: {file: common.yml, service: webapp}\n', DEFAULT_INJECT_OPTIONS)).message).toBe(
      'document 1, field services.web.ports: no port to infer the app port from (services.web.extends names webapp in common.yml, which skein inject does not read): add expose or ports, or the label skein.io/app-port',
    );
  });
});

describe('Compose: transparent mode, which only Kubernetes has', () => {
  const withLabel = (value: string): string => `services:\n  web:\n    image: shop/web:1\n    expose: ["80"]\n    labels: {skein.io/transparent: "${value}"}\n`;
  it('refuses a service labelled skein.io/transparent: "true" rather than injecting it without the redirect', () => {
    expect(thrown(InjectError, () => injectText(withLabel('true'), DEFAULT_INJECT_OPTIONS)).message).toMatch(/services\.web\.labels\.skein\.io\/transparent: transparent mode is Kubernetes only/);
  });

  it('refuses a value other than "true" or "false", as in Kubernetes, and takes "false"', () => {
    expect(thrown(InjectError, () => injectText(withLabel('yes'), DEFAULT_INJECT_OPTIONS)).message).toMatch(/expected "true" or "false", got "yes"/);
    expect(injectText(withLabel('false'), DEFAULT_INJECT_OPTIONS).notes[0]).toMatch(/^service\/web: injected/);
  });
});

describe('Compose: labels written as a list', () => {
  it('takes an entry without "=" as the label with an empty value, as Compose does, not as its own name', () => {
    const text = `services:\n  web:\n    image: shop/web:1\n    expose: ["80"]\n    labels: ["version", "skein.io/service=shop-web"]\n`;
    expect(thrown(InjectError, () => injectText(text, DEFAULT_INJECT_OPTIONS)).message).toMatch(/field services\.web\.labels\.version: version "":/);
  });

  it('takes a mapping key without a value as the label with an empty value, not "null"', () => {
    const text = `services:\n  web:\n    image: shop/web:1\n    expose: ["80"]\n    labels: {version: }\n`;
    expect(thrown(InjectError, () => injectText(text, DEFAULT_INJECT_OPTIONS)).message).toMatch(/field services\.web\.labels\.version: version "":/);
  });
});

describe('Compose: skein.io/access-log', () => {
  const withLabel = (labels: string): string => `services:\n  base:\n    image: shop/web:1\n    labels: {skein.io/inject: "false"}\n  web:\n    extends: base\n    expose: ["80"]\n    labels: {skein.io/inject: "true"${labels}}\n`;
  const accessLog = (labels: string, accessLog: InjectOptions['accessLog']) => {
    const environment = (parse(injectText(withLabel(labels), { ...DEFAULT_INJECT_OPTIONS, accessLog }).output) as { services: Record<string, Sidecar> }).services['web-skein']!.environment;
    return [environment.SKEIN_ACCESS_LOG, environment.SKEIN_ACCESS_LOG_FORMAT];
  };

  it('gives the sidecar service an access log on stdout in the format asked for; the label overrides --access-log either way', () => {
    expect(accessLog('', 'off')).toEqual([undefined, undefined]);
    expect(accessLog('', 'text')).toEqual(['stdout', 'text']);
    expect(accessLog(', skein.io/access-log: json', 'off')).toEqual(['stdout', 'json']);
    expect(accessLog(', skein.io/access-log: "off"', 'json')).toEqual([undefined, undefined]);
  });

  it('refuses any other value, naming the label, inherited through extends too', () => {
    expect(thrown(InjectError, () => injectText(withLabel(', skein.io/access-log: stdout'), DEFAULT_INJECT_OPTIONS)).message).toBe(
      'document 1, field services.web.labels.skein.io/access-log: expected one of "json", "text", "off", got "stdout"',
    );
    const inherited = withLabel('').replace('{skein.io/inject: "false"}', '{skein.io/inject: "false", skein.io/access-log: "yes"}');
    expect(thrown(InjectError, () => injectText(inherited, DEFAULT_INJECT_OPTIONS)).field).toBe('services.base.labels.skein.io/access-log');
  });
});
