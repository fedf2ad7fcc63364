/**
 * The injection webhook as the control plane runs it: TLS with a serving certificate from
 * Skein's own CA (so the MutatingWebhookConfiguration's caBundle is the mesh's trust bundle),
 * reissued at 2/3 of its life and whenever the CA changes (root rotation).
 */
import type { Logger } from '../common/log.js';
import { generateRsaKeyPair, type KeyPairPem } from '../common/identity/keys.js';
import type { InjectOptions } from './options.js';
import { startInjectWebhook, type InjectWebhook } from './webhook-server.js';

/** What the webhook needs from the control plane's CertificateAuthority. */
export interface ServingCertIssuer {
  issueServerCert(keyPair: KeyPairPem, hosts: readonly string[], lifetimeMs: number): { readonly chainPem: string };
  onChange(listener: () => void): void;
}

export interface CaWebhookOptions {
  readonly ca: ServingCertIssuer;
  /** DNS names and IPs the API server dials, e.g. skein-control-plane.skein-system.svc. */
  readonly hosts: readonly string[];
  readonly port: number;
  readonly host?: string;
  readonly inject: InjectOptions;
  readonly logger: Logger;
  readonly certLifetimeMs?: number;
}

const DEFAULT_CERT_LIFETIME_MS = 30 * 24 * 3_600_000;

export async function startCaWebhook(opts: CaWebhookOptions): Promise<InjectWebhook> {
  const lifetimeMs = opts.certLifetimeMs ?? DEFAULT_CERT_LIFETIME_MS;
  const issue = async (): Promise<{ cert: string; key: string }> => {
    const keys = await generateRsaKeyPair();
    return { cert: opts.ca.issueServerCert(keys, opts.hosts, lifetimeMs).chainPem, key: keys.privateKeyPem };
  };
  const first = await issue();
  const webhook = await startInjectWebhook({ ...first, port: opts.port, host: opts.host, inject: opts.inject });
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  const renew = (): void => {
    if (closed) return;
    issue()
      .then(({ cert, key }) => {
        if (closed) return;
        webhook.setCertificate(cert, key);
        schedule();
      })
      .catch((err: unknown) => opts.logger.error({ err }, 'could not renew the injection webhook certificate'));
  };
  const schedule = (): void => {
    clearTimeout(timer);
    timer = setTimeout(renew, (lifetimeMs * 2) / 3);
    timer.unref();
  };
  schedule();
  opts.ca.onChange(renew);
  opts.logger.info({ port: webhook.port, hosts: opts.hosts }, 'injection webhook listening (TLS)');
  return {
    ...webhook,
    async close() {
      closed = true;
      clearTimeout(timer);
      await webhook.close();
    },
  };
}
