/**
 * Control-plane mode (no --config): the push stream is the config source, and it carries the
 * certificate conversation too: the stream presents the issued certificate, the control
 * plane's `renew-cert` command (root rotation) renews at once, and every new certificate is
 * reported as CertStatus so the control plane can pace a rotation. After an outage, a
 * certificate that expired or came due meanwhile is renewed as soon as the stream is back
 * (rather than at the next try of its renewal backoff), and while it is due the stream
 * reconnects at least once a second, so that every sidecar holds a fresh leaf about a second
 * after the control plane returns and peers do not dial each other's expired leaves for long.
 */
import type { Logger } from '../../common/log.js';
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
