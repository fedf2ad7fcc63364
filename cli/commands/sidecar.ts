/** `skein sidecar`: flags of SPEC §3, each also readable from SKEIN_<FLAG_IN_CAPS>. */
import { Command, Option, InvalidArgumentError } from 'commander';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { randomBytes } from 'node:crypto';
import { consulAddressFromEnv, durationFlagWithin, parseAdvertiseAddress, parseConsulAddress, parseDurationFlag, parseHostPort, parseInstanceId, parseServiceName, parseSizeFlag, parseTrustDomain, parseTrustDomainAliases, sizeFlagWithin } from '../flag-values.js';
import { appHealthPath, subsetName } from '../../common/config/schema.js';
import { ACCESS_LOG_FORMATS, REQUEST_HEAD_BYTES, type AccessLogFormat, type SidecarOptions, type Upstream } from '../../sidecar/options.js';
import { formatSize } from '../../common/config/size.js';
import { parsePortText } from '../../common/net/port-text.js';
import { UsageError } from '../usage-error.js';
import { envOption } from '../env-option.js';
import { isLoopbackHost, isUnspecifiedHost } from '../../common/net/loopback.js';
import { tracesUrl } from '../../sidecar/telemetry/otlp-endpoint.js';

/** A port flag: 0-65535, 0 for any free port. */
export function parsePort(value: string): number {
  const port = parsePortText(value, 0);
  if (port === undefined) throw new InvalidArgumentError(`not a port number: ${value} (a decimal number from 0 to 65535)`);
  return port;
}

/** `--app-port`: where the sidecar finds the app, so a port of the app's own, never 0 (any free one). */
function parseAppPort(value: string): number {
  const port = parsePort(value);
  if (port === 0) throw new InvalidArgumentError('the app\'s own port is needed, 1 to 65535 (0, any free port, is for the sidecar\'s listeners)');
  return port;
}

/** One NAME:PORT per flag, NAME a service name; SKEIN_UPSTREAM, having no repeat, takes a comma-separated list. */
function parseUpstream(value: string, previous: Upstream[] = []): Upstream[] {
  const out = [...previous];
  for (const item of value.split(',')) {
    const m = /^(.*):(\d+)$/.exec(item.trim());
    if (!m) throw new InvalidArgumentError(`expected NAME:PORT, got ${item}`);
    out.push({ service: parseServiceName(m[1]!), port: parsePort(m[2]!) });
  }
  return out;
}

/** `--inbound-host`: an address of this host to bind, so an IP address (a name would be resolved only at bind time, after other listeners). */
function parseBindAddress(value: string): string {
  if (isIP(value) === 0) throw new InvalidArgumentError(`must be an IP address of this host, e.g. 0.0.0.0, 127.0.0.1 or ::, not ${JSON.stringify(value)}`);
  return value;
}

/** `--version`: the instance's subset label, part of its instance id; a subset name's shape. */
function parseSubsetLabel(value: string): string {
  const result = subsetName.safeParse(value);
  if (!result.success) throw new InvalidArgumentError(result.error.issues[0]!.message);
  return value;
}

/** `--app-health-path`: a path the sidecar asks the app for. */
function parseHealthPath(value: string): string {
  const result = appHealthPath.safeParse(value);
  if (!result.success) throw new InvalidArgumentError(`${result.error.issues[0]!.message} (got ${JSON.stringify(value)})`);
  return value;
}

/** Each port flag with its value. */
function portFlags(flags: Record<string, unknown>): [string, unknown][] {
  return [
    ['--app-port', flags.appPort],
    ['--inbound-port', flags.inboundPort],
    ['--outbound-port', flags.outboundPort],
    ['--admin-port', flags.adminPort],
    ...(flags.upstream as Upstream[]).map((u): [string, unknown] => [`--upstream ${u.service}:${u.port}`, u.port]),
  ];
}

/** The sidecar's listeners and its app each need a port of their own (0: any free one, for the listeners). */
function checkDistinctPorts(flags: Record<string, unknown>): void {
  const seen = new Map<number, string>();
  for (const [flag, port] of portFlags(flags)) {
    if (typeof port !== 'number' || port === 0) continue;
    const other = seen.get(port);
    if (other !== undefined) throw new UsageError(`${other} and ${flag} are both port ${port}: each needs its own`);
    seen.set(port, flag);
  }
}

function firstNonLoopbackIPv4(): string {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

/**
 * The address peers are told to connect to (Consul registration, the Hello). Without
 * `--advertise-address`, as Consul's agent advertises its `-bind` address: the inbound host
 * when it is one address (a loopback-only listener is reachable at 127.0.0.1 alone), else the
 * first non-loopback IPv4. Given, it may differ from the inbound host (NAT), but not be a
 * non-loopback IP while the listener is on loopback only: no peer could ever connect to it.
 */
export function advertiseAddressOf(inboundHost: string, given: string | undefined, fallback: () => string = firstNonLoopbackIPv4): string {
  if (given === undefined) return isUnspecifiedHost(inboundHost) ? fallback() : inboundHost;
  if (isLoopbackHost(inboundHost) && isIP(given) !== 0 && !isLoopbackHost(given)) {
    throw new UsageError(
      `--advertise-address ${given} and --inbound-host ${inboundHost} disagree: the inbound listener is on loopback only, so nothing listens at ${given}. ` +
        `Give --inbound-host ${given} (or 0.0.0.0) for peers on other hosts, or leave --advertise-address out to advertise ${inboundHost}`,
    );
  }
  return given;
}

/**
 * `SKEIN_OTLP_ENDPOINT`, checked before anything starts: a value undici cannot post to is a
 * usage error naming the variable, rather than a sidecar that starts and dies at its first
 * span export.
 */
function otlpEndpointFromEnv(): string | undefined {
  const value = process.env.SKEIN_OTLP_ENDPOINT;
  if (!value) return undefined;
  try {
    tracesUrl(value);
  } catch (err) {
    throw new UsageError(`SKEIN_OTLP_ENDPOINT=${value}: ${(err as Error).message}`);
  }
  return value;
}

/** `--access-log`: `off` (the default) is none; an empty value is a mistake, not off. */
function parseAccessLog(value: string): string | undefined {
  if (value === 'off') return undefined;
  if (value.trim() === '') throw new InvalidArgumentError('give stdout, stderr, a file path, or off');
  return value;
}

export function registerSidecar(program: Command): void {
  program
    .command('sidecar')
    .description('run a sidecar proxy next to one service instance')
    .addOption(envOption('--service <name>', 'service name, e.g. orders (required)').argParser(parseServiceName))
    .addOption(envOption('--version <label>', 'subset label of this instance').argParser(parseSubsetLabel).default('v1'))
    .addOption(envOption('--app-port <port>', 'local port of the app (required)').argParser(parseAppPort))
    .addOption(envOption('--app-protocol <protocol>', 'http or grpc').choices(['http', 'grpc']).default('http'))
    .addOption(envOption('--app-health-path <path>', 'app readiness check path').argParser(parseHealthPath).default('/health'))
    .addOption(envOption('--inbound-port <port>', 'mTLS listener other sidecars connect to').argParser(parsePort).default(15443))
    .addOption(envOption('--inbound-host <address>', 'IP address the inbound listener binds').argParser(parseBindAddress).default('0.0.0.0'))
    .addOption(envOption('--outbound-port <port>', 'plain listener on 127.0.0.1 the app sends requests to').argParser(parsePort).default(15001))
    .addOption(envOption('--upstream <name:port>', 'also listen on 127.0.0.1:PORT for NAME only (repeatable)').argParser(parseUpstream).default([]))
    .addOption(envOption('--admin-port <port>', 'admin listener on 127.0.0.1').argParser(parsePort).default(15000))
    .addOption(envOption('--control-plane <host:port>', 'gRPC address of the control plane').argParser(parseHostPort))
    .addOption(envOption('--token <token>', 'bootstrap token for the CSR'))
    .addOption(envOption('--consul <url>', 'Consul agent URL; discovery via Consul when set (default: $CONSUL_HTTP_ADDR)').argParser(parseConsulAddress))
    .addOption(envOption('--config <file>', 'static mode: a snapshot file instead of a control plane'))
    .addOption(envOption('--cert-file <file>', 'static identity: leaf certificate (PEM)'))
    .addOption(envOption('--key-file <file>', 'static identity: private key (PEM)'))
    .addOption(envOption('--ca-file <file>', 'trust bundle (PEM): peers in static mode, the control plane otherwise'))
    .addOption(
      envOption('--trust-domain-alias <domain>', 'static identity: another trust domain peers\' identities may be in, e.g. while the mesh moves to a new one (repeatable)')
        .argParser(parseTrustDomainAliases)
        .default([]),
    )
    .addOption(envOption('--drain-timeout <duration>', 'longest wait for in-flight requests on shutdown (0s to 24h)').argParser(durationFlagWithin('0s', '24h')).default(10_000, '10s'))
    .addOption(envOption('--max-request-body <size>', 'largest request body let through, e.g. 10MiB; beyond it 413 bad-request (0: no limit)').argParser(parseSizeFlag).default(0, '0 (no limit)'))
    .addOption(
      envOption('--max-request-headers <size>', `largest request head let through, e.g. 128KiB (${formatSize(REQUEST_HEAD_BYTES.min)} to ${formatSize(REQUEST_HEAD_BYTES.max)}); beyond it 431 bad-request`)
        .argParser(sizeFlagWithin(REQUEST_HEAD_BYTES.min, REQUEST_HEAD_BYTES.max))
        .default(REQUEST_HEAD_BYTES.default, formatSize(REQUEST_HEAD_BYTES.default)),
    )
    .addOption(envOption('--access-log <destination>', 'one line per request: stdout, stderr, a file path (appended to; reopened on SIGHUP), or off').argParser(parseAccessLog).default(undefined, 'off'))
    .addOption(envOption('--access-log-format <format>', 'access log lines: json (one object a line) or text').choices(ACCESS_LOG_FORMATS).default('json'))
    .addOption(envOption('--advertise-address <address>', 'address peers connect to, registered in Consul (default: --inbound-host when it is one address, else the first non-loopback IPv4)').argParser(parseAdvertiseAddress))
    .addOption(envOption('--instance-id <id>', 'unique instance id: letters, digits, "-", "_", ".", ":" (default: service-version-random)').argParser(parseInstanceId))
    .addOption(new Option('--wait-ready', 'do not run a sidecar: wait until the one on --admin-port can carry the app\'s calls (config and certificates in hand), then exit 0 or run COMMAND'))
    .addOption(envOption('--wait-timeout <duration>', 'with --wait-ready: give up (exit 1) after this long (up to 24h)').argParser(durationFlagWithin('0s', '24h')).default(60_000, '60s'))
    .argument('[command...]', 'with --wait-ready: the app to run once its sidecar is ready (after --)')
    .action(async (command: string[], flags: Record<string, unknown>, cmd: Command) => {
      // Only the command line's: SKEIN_WAIT_TIMEOUT may sit in an env shared by a waiter and its sidecar.
      if (!flags.waitReady && cmd.getOptionValueSource('waitTimeout') === 'cli') throw new UsageError('--wait-timeout goes with --wait-ready');
      if (flags.waitReady) {
        const { waitReady, runCommand } = await import('../../sidecar/wait-ready.js');
        await waitReady(flags.adminPort as number, flags.waitTimeout as number);
        if (command.length > 0) process.exit(await runCommand(command));
        return;
      }
      if (command.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(command[0])} (a command to run goes with --wait-ready)`);
      if (flags.service === undefined) throw new UsageError("required option '--service <name>' not specified");
      if (flags.appPort === undefined) throw new UsageError("required option '--app-port <port>' not specified");
      checkDistinctPorts(flags);
      const hasStaticIdentity = [flags.certFile, flags.keyFile].filter(Boolean).length;
      if (hasStaticIdentity === 1) throw new UsageError('--cert-file and --key-file go together');
      if (hasStaticIdentity === 2 && !flags.caFile) throw new UsageError('static identity needs --cert-file, --key-file and --ca-file together');
      if (!flags.config && !flags.controlPlane) throw new UsageError('give --config FILE (static mode) or --control-plane HOST:PORT');
      if (flags.config && flags.controlPlane) throw new UsageError('--config and --control-plane are two modes, give one: static mode reads the config from the file, control-plane mode gets it (and certificates) from the control plane');
      if (flags.token && !flags.controlPlane) throw new UsageError('--token goes with --control-plane: it bootstraps the certificate the control plane issues');
      if ((flags.trustDomainAlias as string[]).length > 0 && !hasStaticIdentity) {
        throw new UsageError('--trust-domain-alias goes with a static identity (--cert-file): with --control-plane the control plane says which trust domains to take (skein control-plane --trust-domain-alias)');
      }
      if (flags.accessLog === undefined && cmd.getOptionValueSource('accessLogFormat') === 'cli') throw new UsageError('--access-log-format goes with --access-log');
      if (flags.caFile && !flags.controlPlane && !hasStaticIdentity) throw new UsageError('--ca-file in static mode goes with --cert-file and --key-file: together they are the sidecar\'s identity');
      if (flags.controlPlane) {
        // The Hello announces both ports, and it goes out before the listeners are bound.
        for (const [flag, port] of [['--inbound-port', flags.inboundPort], ['--admin-port', flags.adminPort]] as const) {
          if (port === 0) throw new UsageError(`${flag} 0 (any free port) is for static mode (--config): with --control-plane the sidecar announces its ports before it binds them; give a port`);
        }
      }
      if (flags.controlPlane && !hasStaticIdentity && !flags.caFile) {
        throw new UsageError('--control-plane needs --ca-file (or SKEIN_CA_FILE): the trust bundle that verifies the control plane, e.g. <data-dir>/ca.crt');
      }
      const service = String(flags.service);
      const options: SidecarOptions = {
        service,
        version: String(flags.version),
        appPort: flags.appPort as number,
        appProtocol: flags.appProtocol as 'http' | 'grpc',
        appHealthPath: String(flags.appHealthPath),
        inboundPort: flags.inboundPort as number,
        inboundHost: String(flags.inboundHost),
        outboundPort: flags.outboundPort as number,
        upstreams: flags.upstream as Upstream[],
        adminPort: flags.adminPort as number,
        controlPlane: flags.controlPlane as string | undefined,
        token: flags.token as string | undefined,
        consul: (flags.consul as string | undefined) ?? consulAddressFromEnv(),
        config: flags.config as string | undefined,
        certFile: flags.certFile as string | undefined,
        keyFile: flags.keyFile as string | undefined,
        caFile: flags.caFile as string | undefined,
        trustDomainAliases: flags.trustDomainAlias as string[],
        drainTimeoutMs: flags.drainTimeout as number,
        maxRequestBodyBytes: flags.maxRequestBody as number,
        maxRequestHeaderBytes: flags.maxRequestHeaders as number,
        advertiseAddress: advertiseAddressOf(String(flags.inboundHost), flags.advertiseAddress as string | undefined),
        instanceId: (flags.instanceId as string | undefined) ?? `${service}-${String(flags.version)}-${randomBytes(4).toString('hex')}`,
        otlpEndpoint: otlpEndpointFromEnv(),
        accessLog: flags.accessLog as string | undefined,
        accessLogFormat: flags.accessLogFormat as AccessLogFormat,
      };
      const { runSidecar } = await import('../../sidecar/main.js');
      const { ListenError } = await import('../../sidecar/listeners.js');
      try {
        await runSidecar(options);
      } catch (err) {
        if (!(err instanceof ListenError) || err.flag !== undefined) throw err;
        // Ports are distinct (checkDistinctPorts), so the port names its flag; an address that is not this host's is --inbound-host's.
        const owner = portFlags(flags).find(([, port]) => port === err.port)?.[0];
        const flag = err.code === 'EADDRNOTAVAIL' ? `--inbound-host ${err.host}` : owner?.startsWith('--upstream') ? owner : owner && `${owner} ${err.port}`;
        throw flag === undefined ? err : new ListenError(err.host, err.port, err.reason, flag);
      }
    });
}
