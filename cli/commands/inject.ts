/** `skein inject -f FILE`: add the sidecar to Kubernetes manifests or a Compose file, printed on stdout. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { parsePortText } from '../../common/net/port-text.js';
import { ACCESS_LOG_SETTINGS, DEFAULT_INJECT_OPTIONS, isNamedVolume, type AccessLogSetting, type InjectOptions } from '../../inject/options.js';
import { parseConsulAddress, parseHostPort, parseImageReference, parseKubernetesName } from '../flag-values.js';
import { readInputFile } from '../input-file.js';

/** `--redirect-ports`: iptables rules for port 0 or a mistyped port would redirect nothing. */
function parsePorts(value: string): number[] {
  return value.split(',').map((text) => {
    const port = parsePortText(text.trim());
    if (port === undefined) throw new InvalidArgumentError(`not a port number (decimal, 1-65535): ${text}`);
    return port;
  });
}

/** `--compose-ca-volume`: it is written as `SOURCE:/etc/skein/ca:ro`, so a ':' in it, or nothing, breaks the mount. */
function parseComposeVolume(value: string): string {
  const named = isNamedVolume(value);
  if (value === '' || value.includes(':') || (named && !/^[a-zA-Z0-9._-]+$/.test(value))) {
    throw new InvalidArgumentError(`expected a volume name (letters, digits, ".", "_", "-") or a host directory, without ":"`);
  }
  return value;
}

const MAX_DRAIN_SECONDS = 24 * 3600;

function parseSeconds(value: string): number {
  const m = /^(\d+)s?$/.exec(value);
  if (!m) throw new InvalidArgumentError(`expected whole seconds, e.g. 10s, got ${value}`);
  // The range `skein sidecar --drain-timeout` accepts (0s to 24h): the value goes into every sidecar.
  if (Number(m[1]) > MAX_DRAIN_SECONDS) throw new InvalidArgumentError(`expected whole seconds, at most ${MAX_DRAIN_SECONDS}s (24h), got ${value}`);
  return Number(m[1]);
}

export function registerInject(program: Command): void {
  program
    .command('inject')
    .description('add the sidecar to Kubernetes manifests or a Compose file (printed on stdout)')
    .requiredOption('-f, --file <file>', 'manifest or compose file; - reads stdin')
    .addOption(new Option('--image <image>', 'sidecar image').argParser(parseImageReference).default(DEFAULT_INJECT_OPTIONS.image))
    .addOption(new Option('--control-plane <host:port>', 'gRPC address of the control plane as seen from the workloads').argParser(parseHostPort).default(DEFAULT_INJECT_OPTIONS.controlPlane))
    .addOption(new Option('--consul <url>', 'Consul agent URL for the sidecars (CONSUL_HTTP_ADDR)').argParser(parseConsulAddress))
    .addOption(new Option('--transparent', 'Kubernetes: redirect outbound HTTP to the sidecar with iptables (an init container with NET_ADMIN)').default(false))
    .addOption(new Option('--redirect-ports <ports>', 'transparent mode: destination ports to redirect, comma-separated').argParser(parsePorts).default([80], '80'))
    .addOption(new Option('--drain-timeout <seconds>', 'sidecar drain on shutdown; the grace period is raised to fit it').argParser(parseSeconds).default(10, '10s'))
    .addOption(new Option('--ca-config-map <name>', 'Kubernetes: ConfigMap with the trust bundle under key ca.crt').argParser(parseKubernetesName).default(DEFAULT_INJECT_OPTIONS.caConfigMap))
    .addOption(new Option('--compose-ca-volume <volume>', "Compose: volume (or host directory) holding the control plane's ca.crt").argParser(parseComposeVolume).default(DEFAULT_INJECT_OPTIONS.composeCaVolume))
    .addOption(new Option('--access-log <format>', 'sidecar access log on its stdout: json, text or off (per workload: skein.io/access-log)').choices(ACCESS_LOG_SETTINGS).default(DEFAULT_INJECT_OPTIONS.accessLog))
    .option('-q, --quiet', 'print no per-workload notes on stderr')
    .action(async (flags: Record<string, unknown>) => {
      const { injectText } = await import('../../inject/inject-text.js');
      const options: InjectOptions = {
        ...DEFAULT_INJECT_OPTIONS,
        image: String(flags.image),
        controlPlane: String(flags.controlPlane),
        consul: flags.consul as string | undefined,
        transparent: Boolean(flags.transparent),
        redirectPorts: flags.redirectPorts as number[],
        drainTimeoutSeconds: flags.drainTimeout as number,
        caConfigMap: String(flags.caConfigMap),
        composeCaVolume: String(flags.composeCaVolume),
        accessLog: flags.accessLog as AccessLogSetting,
      };
      const file = String(flags.file);
      // Everything is injected in memory first: an error leaves stdout empty.
      const result = injectText(await readInputFile(file), options);
      process.stdout.write(result.output);
      for (const warning of result.warnings) process.stderr.write(`skein: warning: ${warning}\n`);
      if (!flags.quiet) for (const note of result.notes) process.stderr.write(`${note}\n`);
    });
}
