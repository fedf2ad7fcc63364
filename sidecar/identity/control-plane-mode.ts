/**
 * Control-plane mode (no --config): the push stream is the config source, and it carries the
 * certificate conversation too: the stream presents the issued certificate, the control
 * plane's `renew-cert` command (root rotation) renews at once, and every new certificate is
 * reported as CertStatus so the control plane can pace a rotation. After an outage, a
 * certificate that expired or came due meanwhile is renewed as soon as the stream is back
 * (rather than at the next try of its renewal backoff), and while it is due the stream
 * reconnects at least once a second, so that every sidecar holds a fresh leaf about a second
 * after the control plane returns and peers do not dial each other's expired leaves for long.
 * The control plane's trust domains (TRUST_DOMAINS_COMMAND, on every stream before its first
 * snapshot) say which peer identities to take, so a mesh can move to another trust domain.
 */
import { isTrustDomain } from '../../common/identity/spiffe.js';
import type { Logger } from '../../common/log.js';
import { TRUST_DOMAINS_COMMAND } from '../../common/proto/mesh.js';
import { ControlPlaneSource } from '../control-plane/source.js';
import type { SidecarOptions } from '../options.js';
import { certStatusOf } from './cert-status.js';
import { IssuedIdentityProvider } from './issued.js';
import type { IdentityProvider } from './provider.js';

export function controlPlaneSource(
  options: SidecarOptions,
  identity: IdentityProvider | undefined,
  logger: Logger,
  /** Other commands (tap-start, tap-stop) go here. */
  onOtherCommand?: (kind: string, json: string) => void,
): ControlPlaneSource {
  if (!options.controlPlane) throw new Error('give --config FILE (static mode) or --control-plane HOST:PORT');
  const issued = identity instanceof IssuedIdentityProvider ? identity : undefined;
  const source = new ControlPlaneSource({
    address: options.controlPlane,
    caFile: options.caFile,
    token: options.token,
    identity,
    logger,
    announce: {
      service: options.service,
      instanceId: options.instanceId,
      version: options.version,
      address: options.advertiseAddress,
      inboundPort: options.inboundPort,
      adminPort: options.adminPort,
      protocol: options.appProtocol,
      labels: { version: options.version },
    },
    onCommand: (kind, json) => {
      if (kind === TRUST_DOMAINS_COMMAND) {
        const trustDomains = trustDomainsOf(json);
        if (trustDomains === undefined) logger.warn({ json }, 'ignored a trust-domains command that names no valid trust domains');
        else issued?.acceptTrustDomains(trustDomains);
        return;
      }
      if (kind !== 'renew-cert') return onOtherCommand?.(kind, json);
      if (issued) issued.renewNow().catch(() => undefined); // failures are logged and retried by the provider
      else if (identity) source.sendCertStatus(certStatusOf(identity.current()!));
    },
    onConnected: issued && (() => void issued.renewIfDue().catch(() => undefined)),
    urgent: issued && (() => issued.due),
  });
  // Not ready before the first snapshot: the first Hello keeps the instance out of the endpoints until this sidecar says otherwise.
  source.reportReadiness(['config: waiting for the first snapshot from the control plane']);
  const current = identity?.current();
  if (current) source.sendCertStatus(certStatusOf(current));
  identity?.onChange((next) => source.sendCertStatus(certStatusOf(next)));
  return source;
}

/** The trust domains of a TRUST_DOMAINS_COMMAND's JSON; undefined when it is not a list of valid ones. */
function trustDomainsOf(json: string): string[] | undefined {
  try {
    const { trustDomains } = JSON.parse(json) as { trustDomains?: unknown };
    if (Array.isArray(trustDomains) && trustDomains.length > 0 && trustDomains.every((d) => typeof d === 'string' && isTrustDomain(d))) return trustDomains as string[];
  } catch {
    // not JSON: refused below
  }
  return undefined;
}
