/** `skein control-plane`: flags of SPEC §5, each also readable from SKEIN_<FLAG_IN_CAPS>. */
import { Command, Option } from 'commander';
import { parseConsulAddress, durationFlagWithin, parseHostPort, parseImageReference, parsePositiveSizeFlag, parseTrustDomain, parseTrustDomainAliases } from '../flag-values.js';
import { CONSUL_SWEEP_MS, type ControlPlaneOptions } from '../../control-plane/options.js';
import { ACCESS_LOG_SETTINGS, DEFAULT_INJECT_OPTIONS, type AccessLogSetting } from '../../inject/options.js';
import type { StoreKind } from '../../control-plane/store/open.js';
import { UsageError } from '../usage-error.js';
import { envOption } from '../env-option.js';
import { parsePort } from './sidecar.js';

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function registerControlPlane(program: Command): void {
  program
    .command('control-plane')
    .description('run the control plane: push server, CA, admin API')
    .addOption(envOption('--data-dir <dir>', 'where the store, CA and admin token live').default('./.skein'))
    .addOption(envOption('--grpc-port <port>', 'TLS gRPC port sidecars connect to').argParser(parsePort).default(15012))
    .addOption(envOption('--grpc-host <address>', 'address the gRPC port binds').default('0.0.0.0'))
    .addOption(envOption('--http-port <port>', 'admin API port').argParser(parsePort).default(15080))
    .addOption(envOption('--http-host <address>', 'address the admin API binds').default('127.0.0.1'))
    .addOption(new Option('--consul <url>', 'Consul agent URL: discovery through Consul').env('CONSUL_HTTP_ADDR').argParser(parseConsulAddress))
    .addOption(
      envOption('--consul-sweep <duration>', "with --consul: every service in Consul's catalog is read again once within it, one at a time, so a change the catalog's lists do not show is pushed within it (1s to 24h)")
        .argParser(durationFlagWithin('1s', '24h'))
        .default(CONSUL_SWEEP_MS, '60s'),
    )
    .addOption(envOption('--store <kind>', 'where config is stored: file (in the data dir) or consul (KV under skein/)').choices(['file', 'consul']).default('file'))
    .addOption(envOption('--trust-domain <domain>', 'SPIFFE trust domain').argParser(parseTrustDomain).default('skein.local'))
    .addOption(
      envOption('--trust-domain-alias <domain>', 'a trust domain the mesh was in before: its identities are still taken, and renewed into --trust-domain (repeatable)')
        .argParser(parseTrustDomainAliases)
        .default([]),
    )
    .addOption(envOption('--ca-cert-file <file>', 'operator-supplied CA root certificate (PEM); with --ca-key-file, replicas share one root'))
    .addOption(envOption('--ca-key-file <file>', 'private key (PEM, RSA) of --ca-cert-file'))
    .addOption(new Option('--ca-cert <file>', 'same as --ca-cert-file').hideHelp())
    .addOption(new Option('--ca-key <file>', 'same as --ca-key-file').hideHelp())
    .addOption(envOption('--cert-ttl <duration>', 'lifetime of issued leaf certificates (2s to 8760h, a year); renewed at 2/3 of it').argParser(durationFlagWithin('2s', '8760h')).default(24 * 3_600_000, '24h'))
    .addOption(envOption('--tls-san <name>', 'extra DNS name or IP for the gRPC server certificate (repeatable)').argParser(collect).default([]))
    .addOption(envOption('--registry-grace <duration>', 'how long an instance whose stream broke stays registered, and a root rotation waits for sidecars to come back (0s to 24h)').argParser(durationFlagWithin('0s', '24h')).default(30_000, '30s'))
    .addOption(envOption('--resync-hold <duration>', 'after a start, how long sidecars that already run a snapshot keep it while the registry refills (0s to 1h)').argParser(durationFlagWithin('0s', '1h')).default(10_000, '10s'))
    .addOption(envOption('--coalesce <duration>', 'how long to gather changes into one snapshot (0s to 1s)').argParser(durationFlagWithin('0s', '1s')).default(5, '5ms'))
    .addOption(envOption('--max-body <size>', 'largest admin API request body').argParser(parsePositiveSizeFlag).default(1024 * 1024, '1MiB'))
    .addOption(envOption('--keepalive <duration>', 'ping interval on sidecar streams (1s to 1h); a peer that does not answer within min(5s, interval) is dropped').argParser(durationFlagWithin('1s', '1h')).default(10_000, '10s'))
    .addOption(envOption('--webhook-port <port>', 'serve the Kubernetes injection webhook (POST /api/v1/inject) over TLS on this port').argParser(parsePort))
    .addOption(envOption('--inject-image <image>', 'webhook: sidecar image').argParser(parseImageReference).default(DEFAULT_INJECT_OPTIONS.image))
    .addOption(envOption('--inject-control-plane <host:port>', 'webhook: control-plane gRPC address as workloads see it').argParser(parseHostPort).default(DEFAULT_INJECT_OPTIONS.controlPlane))
    .addOption(envOption('--inject-consul <url>', 'webhook: Consul agent URL for injected sidecars').argParser(parseConsulAddress))
    .addOption(envOption('--inject-access-log <format>', "webhook: injected sidecars' access log on their stdout: json, text or off (per workload: skein.io/access-log)").choices(ACCESS_LOG_SETTINGS).default(DEFAULT_INJECT_OPTIONS.accessLog))
    .action(async (flags: Record<string, unknown>) => {
      if (flags.store === 'consul' && !flags.consul) throw new UsageError('--store consul needs --consul URL (or CONSUL_HTTP_ADDR)');
      const aliases = flags.trustDomainAlias as string[];
      if (aliases.includes(String(flags.trustDomain))) throw new UsageError(`--trust-domain-alias ${String(flags.trustDomain)} is --trust-domain itself; an alias names a trust domain the mesh was in before`);
      const options: ControlPlaneOptions = {
        dataDir: String(flags.dataDir),
        grpcHost: String(flags.grpcHost),
        grpcPort: flags.grpcPort as number,
        httpHost: String(flags.httpHost),
        httpPort: flags.httpPort as number,
        consul: flags.consul as string | undefined,
        consulSweepMs: flags.consulSweep as number,
        store: flags.store as StoreKind,
        trustDomain: String(flags.trustDomain),
        trustDomainAliases: aliases,
        tlsSans: flags.tlsSan as string[],
        caCertFile: (flags.caCertFile ?? flags.caCert) as string | undefined,
        caKeyFile: (flags.caKeyFile ?? flags.caKey) as string | undefined,
        certTtlMs: flags.certTtl as number,
        adminToken: process.env.SKEIN_ADMIN_TOKEN || undefined,
        registryGraceMs: flags.registryGrace as number,
        resyncHoldMs: flags.resyncHold as number,
        coalesceMs: flags.coalesce as number,
        maxBodyBytes: flags.maxBody as number,
        keepaliveMs: flags.keepalive as number,
        webhookPort: flags.webhookPort as number | undefined,
        inject: {
          ...DEFAULT_INJECT_OPTIONS,
          image: String(flags.injectImage),
          controlPlane: String(flags.injectControlPlane),
          consul: flags.injectConsul as string | undefined,
          accessLog: flags.injectAccessLog as AccessLogSetting,
        },
      };
      const { runControlPlane } = await import('../../control-plane/main.js');
      await runControlPlane(options);
    });
}
