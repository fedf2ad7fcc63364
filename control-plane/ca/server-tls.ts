/**
 * TLS for the control plane's gRPC port: a server certificate issued by the CA for this
 * machine's names and addresses, and a client-certificate request (not requirement) trusting
 * the bundle, so `Sign` can authorise renewals by certificate while bootstrap calls come
 * with a token only. The credentials follow the CA: after every rotation step, and at 2/3
 * of the server certificate's life, new connections get a fresh certificate and bundle.
 */
import * as grpc from '@grpc/grpc-js';
import { experimental } from '@grpc/grpc-js';
import { hostname, networkInterfaces } from 'node:os';
import { generateRsaKeyPair } from '../../common/identity/keys.js';
import type { Logger } from '../../common/log.js';
import type { CertificateAuthority } from './authority.js';

const SERVER_CERT_LIFETIME_MS = 30 * 24 * 3_600_000;

type CaListener = experimental.CaCertificateUpdateListener;
type IdentityListener = experimental.IdentityCertificateUpdateListener;

/** Every name a sidecar on this machine or the network may dial the control plane by. */
export function localHostNames(extra: readonly string[] = []): string[] {
  const addresses = Object.values(networkInterfaces())
    .flatMap((list) => list ?? [])
    .map((a) => a.address);
  return [...new Set(['localhost', hostname(), '127.0.0.1', '::1', ...addresses, ...extra])];
}

export class ControlPlaneTls implements experimental.CertificateProvider {
  private caUpdate: experimental.CaCertificateUpdate | null = null;
  private identityUpdate: experimental.IdentityCertificateUpdate | null = null;
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();
  private renewTimer: NodeJS.Timeout | undefined;
  readonly credentials: grpc.ServerCredentials;

  private constructor(
    private readonly ca: CertificateAuthority,
    private readonly hosts: readonly string[],
    private readonly logger: Logger,
  ) {
    this.credentials = experimental.createCertificateProviderServerCredentials(this, this, false);
  }

  static async create(ca: CertificateAuthority, logger: Logger, extraHosts: readonly string[] = []): Promise<ControlPlaneTls> {
    const tls = new ControlPlaneTls(ca, localHostNames(extraHosts), logger);
    await tls.refresh();
    ca.onChange(() => {
      tls.refresh().catch((err: unknown) => logger.error({ err }, 'could not reissue the control plane certificate'));
    });
    return tls;
  }

  /** Issues a new server certificate from the current signing root and publishes it with the bundle. */
  async refresh(): Promise<void> {
    const keys = await generateRsaKeyPair();
    const issued = this.ca.issueServerCert(keys, this.hosts, SERVER_CERT_LIFETIME_MS);
    this.identityUpdate = { certificate: Buffer.from(issued.chainPem), privateKey: Buffer.from(keys.privateKeyPem) };
    this.caUpdate = { caCertificate: Buffer.from(this.ca.bundlePem) };
    for (const l of this.caListeners) l(this.caUpdate);
    for (const l of this.identityListeners) l(this.identityUpdate);
    if (this.renewTimer) clearTimeout(this.renewTimer);
    this.renewTimer = setTimeout(() => {
      this.refresh().catch((err: unknown) => this.logger.error({ err }, 'could not renew the control plane certificate'));
    }, (SERVER_CERT_LIFETIME_MS * 2) / 3);
    this.renewTimer.unref();
  }

  close(): void {
    if (this.renewTimer) clearTimeout(this.renewTimer);
  }

  // grpc-js subscribes before it registers the watcher that applies updates, so the current
  // material is delivered on the next tick rather than synchronously (where it would be lost).
  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    queueMicrotask(() => {
      if (this.caUpdate && this.caListeners.has(listener)) listener(this.caUpdate);
    });
  }
  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }
  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    queueMicrotask(() => {
      if (this.identityUpdate && this.identityListeners.has(listener)) listener(this.identityUpdate);
    });
  }
  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }
}
