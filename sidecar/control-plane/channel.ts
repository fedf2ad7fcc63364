/**
 * The TLS side of a gRPC channel to the control plane (the config stream and CSR signing).
 *
 * grpc-js sends the target's host as the TLS server name (SNI) even when it is an IP
 * literal. RFC 6066 forbids that and Node warns about it (DEP0123, on every sidecar's stderr
 * in control-plane mode; Node has since moved towards refusing it). So for an IP target the
 * server name sent is a fixed DNS-style label, and the certificate is still checked against
 * the IP that was dialled: the control plane's server certificate carries its IP SANs.
 */
import * as grpc from '@grpc/grpc-js';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { joinPemCertificates, splitPemCertificates } from '../../common/identity/bundle.js';

/** Sent as SNI instead of an IP; the control plane serves one certificate whatever the name. */
export const CONTROL_PLANE_SNI = 'skein-control-plane';

/** The host of a gRPC target (`host:port`, `[v6]:port` or a bare host). */
export function targetHost(address: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(address);
  if (bracketed) return bracketed[1]!;
  const colon = address.lastIndexOf(':');
  // A bare IPv6 address has several colons and no port.
  return colon > 0 && address.indexOf(':') === colon ? address.slice(0, colon) : address;
}

export interface ControlPlaneTls {
  readonly credentials: grpc.ChannelCredentials;
  /** Channel options to pass with them (the SNI override for an IP target). */
  readonly channelOptions: grpc.ChannelOptions;
}

/** A sidecar identity as far as the control-plane channel needs it. */
export interface ChannelIdentity {
  readonly keyPem: string;
  readonly certPem: string;
  /** The trust bundle that came with it (the control plane's CA, during a rotation both roots). */
  readonly caPem: string;
}

/**
 * Credentials for `address`. Trusted: the certificates of `caFile` (when given) together with
 * the bundle of the sidecar's current identity, so a rotated CA is trusted before the file is
 * updated; the system's roots when neither gives any. Presented: that identity, when there is one.
 */
export async function controlPlaneTls(address: string, caFile: string | undefined, identity?: ChannelIdentity): Promise<ControlPlaneTls> {
  const pems = [...(caFile ? splitPemCertificates(await readFile(caFile, 'utf8')) : []), ...(identity ? splitPemCertificates(identity.caPem) : [])];
  const roots = pems.length > 0 ? Buffer.from(joinPemCertificates([...new Set(pems)])) : null;
  const host = targetHost(address);
  if (isIP(host) === 0) {
    return { credentials: createSsl(roots, identity), channelOptions: {} };
  }
  const verify = { checkServerIdentity: (_sni: string, cert: PeerCertificate) => checkServerIdentity(host, cert) };
  return { credentials: createSsl(roots, identity, verify), channelOptions: { 'grpc.ssl_target_name_override': CONTROL_PLANE_SNI } };
}

function createSsl(roots: Buffer | null, identity: ChannelIdentity | undefined, verify?: grpc.VerifyOptions): grpc.ChannelCredentials {
  return identity
    ? grpc.credentials.createSsl(roots, Buffer.from(identity.keyPem), Buffer.from(identity.certPem), verify)
    : grpc.credentials.createSsl(roots, null, null, verify);
}
