/**
 * `skein sidecar` as a command line: `--wait-ready [-- COMMAND]` against a real sidecar (it
 * waits for what the app's outbound calls need, config and certificates, not for the app's
 * own health), usage errors, and a sidecar configured by SKEIN_* variables alone.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, freePorts, Processes, startScriptedConsulAgent, startUpstream, tempDir, waitUntil, writeConfigFile, type TestUpstream } from '../support/index.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Runs `skein` with `base` plus each case's flags and checks it exits with the case's code and message. */
async function expectRefusals(procs: Processes, base: readonly string[], cases: readonly [string[], number, RegExp][]): Promise<void> {
  for (const [args, code, message] of cases) {
    const child = procs.skein(args.join(' '), [...base, ...args]);
    const exit = await child.exited;
    expect(exit.code, child.output()).toBe(code);
    expect(child.output()).toMatch(message);
  }
}

describe('skein sidecar --wait-ready', () => {
  const procs = new Processes();
  const upstreams: TestUpstream[] = [];
  afterEach(async () => {
    await procs.killAll();
    await Promise.all(upstreams.splice(0).map((u) => u.close()));
  });

  it('runs the command once its sidecar has config, though the app (not started yet) is not healthy', async () => {
    const adminPort = await freePort();
    const waiter = procs.skein('wait-ready', ['sidecar', '--wait-ready', '--admin-port', String(adminPort), '--wait-timeout', '30s', '--', process.execPath, '-e', "console.log('app started'); process.exit(3)"]);
    // The app is not up: its health check fails, so /ready stays 503 whatever the waiter does.
    const app = await startUpstream((_req, res) => res.writeHead(503).end('starting'));
    upstreams.push(app);
    const config = writeConfigFile(join(tempDir(), 'c.json'), {});
    expect(waiter.hasExited, waiter.output()).toBe(false);
    const sc = await procs.sidecar({ service: 'app', appPort: app.port, config, adminPort, waitFor: '/live' });
    const exit = await waiter.exited;
    expect(waiter.output()).toContain('app started');
    expect(exit.code, waiter.output()).toBe(3); // the command's own exit code
    const ready = await fetch(`${sc.adminUrl}/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.text()).toContain('app:');
    expect((await fetch(`${sc.adminUrl}/ready/outbound`)).status).toBe(200);
  });

  it('gives up after --wait-timeout with exit 1, saying what the admin port last answered', async () => {
    const adminPort = await freePort();
    const started = Date.now();
    const waiter = procs.skein('wait-ready', ['sidecar', '--wait-ready', '--admin-port', String(adminPort), '--wait-timeout', '300ms', '--', process.execPath, '-e', "console.log('app started')"]);
    const exit = await waiter.exited;
    expect(exit.code).toBe(1);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(waiter.output()).toMatch(/was not ready within 300 ms \(last: ECONNREFUSED\)/);
    expect(waiter.output()).not.toContain('app started');
  });

  it('takes the timeout from SKEIN_WAIT_TIMEOUT, as every flag but --wait-ready has its env variable', async () => {
    const adminPort = await freePort();
    const waiter = procs.skein('wait-ready', ['sidecar', '--wait-ready', '--admin-port', String(adminPort)], { SKEIN_WAIT_TIMEOUT: '300ms' });
    expect((await waiter.exited).code).toBe(1);
    expect(waiter.output()).toMatch(/was not ready within 300 ms/);
  });

  it('refuses a command without --wait-ready, and a sidecar without --service (exit 2)', async () => {
    const stray = procs.skein('stray', ['sidecar', '--service', 'x', '--app-port', '1', '--config', 'c.json', 'extra']);
    expect((await stray.exited).code).toBe(2);
    expect(stray.output()).toContain('unexpected argument "extra"');
    const missing = procs.skein('missing', ['sidecar', '--app-port', '1', '--config', 'c.json']);
    expect((await missing.exited).code).toBe(2);
    expect(missing.output()).toContain("required option '--service <name>' not specified");
  });

  it('refuses control-plane flags that could never work: exit 2 for a bad flag, exit 1 for an unreadable trust bundle, instead of retrying for ever', async () => {
    // Ports it never binds (each case stops before that); not 0, which control-plane mode refuses.
    const base = ['sidecar', '--service', 'x', '--app-port', '1', '--admin-port', '4005', '--inbound-port', '4006', '--outbound-port', '0'];
    const cases: [string[], number, RegExp][] = [
      [['--control-plane', 'nonsense'], 2, /argument 'nonsense' is invalid\. expected HOST:PORT/],
      [['--control-plane', '127.0.0.1:1', '--token', 't'], 2, /--control-plane needs --ca-file/],
      [['--control-plane', '127.0.0.1:1', '--token', 't', '--ca-file', join(tempDir(), 'missing.crt')], 1, /--ca-file .*missing\.crt: cannot read it as PEM certificates \(ENOENT\)/],
      [['--config', 'c.json', '--consul', 'not a url'], 2, /argument 'not a url' is invalid\. "not a url" is not a URL/],
    ];
    await expectRefusals(procs, base, cases);
  });
});

describe('skein sidecar static identity flags', () => {
  const procs = new Processes();
  afterEach(() => procs.killAll());

  it('names the flag of an unreadable --cert-file, --key-file or --ca-file (exit 1), and refuses an incomplete set as a usage error (exit 2)', async () => {
    const dir = tempDir();
    const config = writeConfigFile(join(dir, 'c.json'), {});
    // Readable files: each case fails on the first unreadable one, before any PEM is parsed.
    const present = join(dir, 'present.pem');
    writeFileSync(present, 'not checked yet\n');
    const nope = join(dir, 'nope.crt');
    const base = ['sidecar', '--service', 'x', '--app-port', '1', '--config', config, '--admin-port', '0', '--inbound-port', '0', '--outbound-port', '0'];
    const cases: [string[], number, RegExp][] = [
      [['--cert-file', nope, '--key-file', present, '--ca-file', present], 1, /^skein: --cert-file .*nope\.crt: cannot read it \(ENOENT\)$/m],
      [['--cert-file', present, '--key-file', nope, '--ca-file', present], 1, /^skein: --key-file .*nope\.crt: cannot read it \(ENOENT\)$/m],
      [['--cert-file', present, '--key-file', present, '--ca-file', nope], 1, /^skein: --ca-file .*nope\.crt: cannot read it as PEM certificates \(ENOENT\)$/m],
      [['--cert-file', present, '--key-file', present], 2, /^skein: static identity needs --cert-file, --key-file and --ca-file together$/m],
      [['--cert-file', present], 2, /^skein: --cert-file and --key-file go together$/m],
    ];
    await expectRefusals(procs, base, cases);
  });
});

describe('skein sidecar flag values', () => {
  const procs = new Processes();
  afterEach(() => procs.killAll());

  it('refuses, as usage errors (exit 2) before anything starts, a service or version the mesh could not name, a health path that is not a path, an advertise address no caller could connect to, an instance id that is empty or holds `/ ? #`, and two listeners (or a listener and the app) on one port', async () => {
    const config = writeConfigFile(join(tempDir(), 'c.json'), {});
    const base = ['sidecar', '--config', config];
    const ports = ['--inbound-port', '0', '--outbound-port', '0', '--admin-port', '0'];
    const cases: [string[], number, RegExp][] = [
      [['--service', 'Catalog', '--app-port', '1', ...ports], 2, /--service <name>' argument 'Catalog' is invalid/],
      [['--service', 'x', '--version', 'v 1', '--app-port', '1', ...ports], 2, /--version <label>' argument 'v 1' is invalid/],
      [['--service', 'x', '--app-health-path', 'health', '--app-port', '1', ...ports], 2, /expected a path starting with "\/", e\.g\. \/health \(got "health"\)/],
      [['--service', 'x', '--advertise-address', 'http://10.0.0.7', '--app-port', '1', ...ports], 2, /--advertise-address <address>' argument 'http:\/\/10\.0\.0\.7' is invalid\. must be an IP address or a host name, not "http:\/\/10\.0\.0\.7" \(no scheme, brackets or port/],
      [['--service', 'x', '--app-port', '0x1F90', ...ports], 2, /--app-port <port>' argument '0x1F90' is invalid\. not a port number: 0x1F90 \(a decimal number from 0 to 65535\)/],
      [['--service', 'x', '--advertise-address', '0.0.0.0', '--app-port', '1', ...ports], 2, /0\.0\.0\.0 is the unspecified address/],
      [['--service', 'x', '--app-port', '1', ...ports, '--inbound-host', '127.0.0.1', '--advertise-address', '10.0.0.7'], 2, /^skein: --advertise-address 10\.0\.0\.7 and --inbound-host 127\.0\.0\.1 disagree: the inbound listener is on loopback only, so nothing listens at 10\.0\.0\.7\. Give --inbound-host 10\.0\.0\.7 \(or 0\.0\.0\.0\)/m],
      [['--service', 'x', '--app-port', '4000', '--inbound-port', '4000', '--outbound-port', '0', '--admin-port', '0'], 2, /^skein: --app-port and --inbound-port are both port 4000: each needs its own$/m],
      [['--service', 'x', '--app-port', '1', '--inbound-port', '0', '--outbound-port', '4001', '--admin-port', '4001'], 2, /^skein: --outbound-port and --admin-port are both port 4001: each needs its own$/m],
      [['--service', 'x', '--app-port', '1', ...ports, '--upstream', 'a:4002', '--upstream', 'b:4002'], 2, /^skein: --upstream a:4002 and --upstream b:4002 are both port 4002: each needs its own$/m],
      [['--service', 'x', '--app-port', '1', ...ports, '--instance-id', ''], 2, /--instance-id <id>' argument '' is invalid\. must be 1 to 253 letters, digits/],
      [['--service', 'x', '--app-port', '1', ...ports, '--instance-id', '../x'], 2, /--instance-id <id>' argument '\.\.\/x' is invalid/],
      [['--service', 'x', '--app-port', '1', ...ports, '--instance-id', 'a?b'], 2, /--instance-id <id>' argument 'a\?b' is invalid/],
      [['--service', 'x', '--app-port', '0', ...ports], 2, /--app-port <port>' argument '0' is invalid\. the app's own port is needed, 1 to 65535/],
      [['--service', 'x', '--app-port', '1', ...ports, '--upstream', '-backend-:4003'], 2, /--upstream <name:port>' argument '-backend-:4003' is invalid/],
      [['--service', 'x', '--app-port', '1', ...ports, '--upstream', `${'a'.repeat(64)}:4003`], 2, /--upstream <name:port>' argument 'a{64}:4003' is invalid/],
      [['--service', 'x', '--app-port', '1', ...ports, '--inbound-host', 'not-a-host.invalid'], 2, /--inbound-host <address>' argument 'not-a-host\.invalid' is invalid\. must be an IP address of this host/],
      [['--service', 'x', '--app-port', '1', ...ports, '--ca-file', 'ca.crt'], 2, /^skein: --ca-file in static mode goes with --cert-file and --key-file/m],
      [['--service', 'x', '--app-port', '1', ...ports, '--token', 't'], 2, /^skein: --token goes with --control-plane/m],
      [['--service', 'x', '--app-port', '1', ...ports, '--control-plane', '127.0.0.1:1', '--ca-file', 'ca.crt'], 2, /^skein: --config and --control-plane are two modes, give one/m],
      // Past Node's timer limit (about 596 h) a drain would end after 1 ms.
      [['--service', 'x', '--app-port', '1', ...ports, '--drain-timeout', '600h'], 2, /--drain-timeout <duration>' argument '600h' is invalid\. 600h is out of range: must be between 0s and 24h/],
      [['--service', 'x', '--app-port', '1', ...ports, '--wait-timeout', '600h'], 2, /--wait-timeout <duration>' argument '600h' is invalid\. 600h is out of range: must be between 0s and 24h/],
      // A head limit of nothing would refuse every request; past 128 KiB node:http2 peers could not take the head (sidecar/options.ts).
      [['--service', 'x', '--app-port', '1', ...ports, '--max-request-headers', '0'], 2, /--max-request-headers <size>' argument '0' is invalid\. 0 is out of range: must be between 1KiB and 128KiB/],
      [['--service', 'x', '--app-port', '1', ...ports, '--max-request-headers', 'banana'], 2, /--max-request-headers <size>' argument 'banana' is invalid\. not a size: banana/],
      [['--service', 'x', '--app-port', '1', ...ports, '--max-request-headers', '129KiB'], 2, /--max-request-headers <size>' argument '129KiB' is invalid\. 129KiB is out of range: must be between 1KiB and 128KiB/],
      // Without --wait-ready the flag would be ignored, and the sidecar run as if it had not been given.
      [['--service', 'x', '--app-port', '1', ...ports, '--wait-timeout', '5s'], 2, /^skein: --wait-timeout goes with --wait-ready$/m],
    ];
    await expectRefusals(procs, base, cases);
  });

  it('refuses --inbound-port 0 and --admin-port 0 in control-plane mode, whose Hello announces the ports before they are bound (exit 2)', async () => {
    const base = ['sidecar', '--service', 'x', '--app-port', '1', '--control-plane', '127.0.0.1:1', '--ca-file', 'ca.pem', '--outbound-port', '0'];
    await expectRefusals(procs, base, [
      [['--inbound-port', '0', '--admin-port', '4003'], 2, /^skein: --inbound-port 0 \(any free port\) is for static mode \(--config\)/m],
      [['--inbound-port', '4004', '--admin-port', '0'], 2, /^skein: --admin-port 0 \(any free port\) is for static mode \(--config\)/m],
    ]);
  });

  it('refuses a --consul or CONSUL_HTTP_ADDR that is no agent URL (a slash short, a port past 65535) as a usage error (exit 2) naming where it came from', async () => {
    const config = writeConfigFile(join(tempDir(), 'c.json'), {});
    const base = ['sidecar', '--config', config, '--service', 'x', '--app-port', '1', '--inbound-port', '0', '--outbound-port', '0', '--admin-port', '0'];
    await expectRefusals(procs, base, [[['--consul', 'http:/127.0.0.1:8500'], 2, /--consul <url>' argument 'http:\/127\.0\.0\.1:8500' is invalid\. "http:\/127\.0\.0\.1:8500" is not a URL/]]);
    const child = procs.skein('consul-env', base, { CONSUL_HTTP_ADDR: '127.0.0.1:99999' });
    expect((await child.exited).code, child.output()).toBe(2);
    expect(child.output()).toMatch(/^skein: CONSUL_HTTP_ADDR=127\.0\.0\.1:99999: "127\.0\.0\.1:99999" is not a URL/m);
  });

  it('refuses an empty SKEIN_INSTANCE_ID as a usage error (exit 2), as it would the flag', async () => {
    const config = writeConfigFile(join(tempDir(), 'c.json'), {});
    const child = procs.skein('empty-id', ['sidecar', '--config', config, '--service', 'x', '--app-port', '1', '--inbound-port', '0', '--outbound-port', '0', '--admin-port', '0'], { SKEIN_INSTANCE_ID: '' });
    expect((await child.exited).code, child.output()).toBe(2);
    expect(child.output()).toMatch(/--instance-id <id>' value '' from env 'SKEIN_INSTANCE_ID' is invalid/);
  });

  it('refuses a SKEIN_MAX_REQUEST_HEADERS out of range as a usage error (exit 2), as it would the flag', async () => {
    const config = writeConfigFile(join(tempDir(), 'c.json'), {});
    const child = procs.skein('head-limit', ['sidecar', '--config', config, '--service', 'x', '--app-port', '1', '--inbound-port', '0', '--outbound-port', '0', '--admin-port', '0'], { SKEIN_MAX_REQUEST_HEADERS: '1MiB' });
    expect((await child.exited).code, child.output()).toBe(2);
    expect(child.output()).toMatch(/--max-request-headers <size>' value '1MiB' from env 'SKEIN_MAX_REQUEST_HEADERS' is invalid\. 1MiB is out of range: must be between 1KiB and 128KiB/);
  });

  it('refuses an unknown or empty SKEIN_LOG_LEVEL as a usage error (exit 2) naming the levels, where pino stopped the process with a stack trace', async () => {
    const config = writeConfigFile(join(tempDir(), 'c.json'), {});
    const args = ['sidecar', '--config', config, '--service', 'x', '--app-port', '1', '--inbound-port', '0', '--outbound-port', '0', '--admin-port', '0'];
    for (const level of ['verbose', '']) {
      const child = procs.skein(`log-level ${level}`, args, { SKEIN_LOG_LEVEL: level });
      expect((await child.exited).code, child.output()).toBe(2);
      expect(child.output()).toContain(`skein: SKEIN_LOG_LEVEL=${JSON.stringify(level)}: not a log level (fatal, error, warn, info, debug, trace, silent)`);
      expect(child.output()).not.toContain('    at ');
    }
  });

  it('names the flag of a port already in use (exit 1)', async () => {
    const taken = await startUpstream();
    try {
      const config = writeConfigFile(join(tempDir(), 'c.json'), {});
      const base = ['sidecar', '--service', 'x', '--app-port', '1', '--config', config];
      await expectRefusals(procs, base, [
        [['--inbound-port', String(taken.port), '--outbound-port', '0', '--admin-port', '0'], 1, new RegExp(`^skein: --inbound-port ${taken.port}: address already in use \\(EADDRINUSE\\)$`, 'm')],
        [['--inbound-port', '0', '--outbound-port', '0', '--admin-port', '0', '--upstream', `a:${taken.port}`], 1, new RegExp(`^skein: --upstream a:${taken.port}: address already in use`, 'm')],
      ]);
    } finally {
      await taken.close();
    }
  });
});

describe('skein sidecar from SKEIN_* environment variables alone', () => {
  const procs = new Processes();
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    await procs.killAll();
    for (const c of cleanups.splice(0)) await c();
  });

  it('reads SKEIN_CONSUL (a scripted agent sees the registration) and a comma-separated SKEIN_UPSTREAM, and runs with a SKEIN_WAIT_TIMEOUT meant for a waiter', async () => {
    const consul = await startScriptedConsulAgent();
    cleanups.push(() => consul.close());
    const app = await startUpstream();
    cleanups.push(() => app.close());
    const [inbound, outbound, admin, up1, up2] = (await freePorts(5)) as [number, number, number, number, number];
    const sc = procs.skein('env-sidecar', ['sidecar'], {
      SKEIN_SERVICE: 'envsvc',
      SKEIN_APP_PORT: String(app.port),
      SKEIN_CONFIG: writeConfigFile(join(tempDir(), 'c.json'), {}),
      SKEIN_INBOUND_HOST: '127.0.0.1',
      SKEIN_INBOUND_PORT: String(inbound),
      SKEIN_OUTBOUND_PORT: String(outbound),
      SKEIN_ADMIN_PORT: String(admin),
      SKEIN_UPSTREAM: `catalog:${up1}, orders:${up2}`,
      SKEIN_CONSUL: consul.url,
      SKEIN_ADVERTISE_ADDRESS: '127.0.0.1',
      CONSUL_HTTP_ADDR: 'http://127.0.0.1:1',
      // An env shared with the app's `--wait-ready` step: taken, not refused as the flag alone would be.
      SKEIN_WAIT_TIMEOUT: '5s',
    });
    await waitUntil(() => consul.puts.some((p) => p.path === '/v1/agent/service/register'), { what: `the registration; sidecar said:\n${sc.output()}` });
    expect(JSON.parse(consul.puts.find((p) => p.path === '/v1/agent/service/register')!.body)).toMatchObject({ Name: 'envsvc', Port: inbound });
    for (const [port, service] of [[up1, 'catalog'], [up2, 'orders']] as const) {
      const res = await fetch(`http://127.0.0.1:${port}/x`);
      expect(res.status, service).toBe(404);
      expect(await res.text()).toContain(service);
    }
  });
});
