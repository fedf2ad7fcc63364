/**
 * Which identity a sidecar runs with, from its flags (SPEC §3):
 *   --cert-file/--key-file/--ca-file   static files, re-read when they change
 *   --control-plane + --ca-file        issued by the control plane's CA from a local key,
 *                                      bootstrapped with --token, renewed before expiry
 *   neither                            none: plain HTTP inbound, no caller identities
 * Resolves once the first certificate is in hand, so listeners start with mTLS from the
 * first connection; a refused token or identity fails the start with the CA's reason.
 */
import { readTrustBundle, TrustBundleError } from '../../common/identity/bundle.js';
import type { Logger } from '../../common/log.js';
import type { SidecarOptions } from '../options.js';
import { controlPlaneSigner } from './control-plane-signer.js';
import { IssuedIdentityProvider } from './issued.js';
import type { IdentityProvider } from './provider.js';
import { StaticFilesIdentityProvider } from './static-files.js';

export async function openIdentity(options: SidecarOptions, logger: Logger): Promise<IdentityProvider | undefined> {
  if (options.certFile || options.keyFile) {
    if (!options.certFile || !options.keyFile || !options.caFile) throw new Error('static identity needs --cert-file, --key-file and --ca-file together');
    return new StaticFilesIdentityProvider({
      certFile: options.certFile, keyFile: options.keyFile, caFile: options.caFile, service: options.service, peerTrustDomains: options.trustDomainAliases, logger,
    });
  }
  if (!options.controlPlane) return undefined;
  if (!options.caFile) throw new Error('--control-plane needs --ca-file (or SKEIN_CA_FILE): the trust bundle that verifies the control plane, e.g. <data-dir>/ca.crt');
  // A missing or garbled bundle is a setup mistake, not a control plane that is away: say so instead of retrying for ever.
  checkTrustBundle(options.caFile);
  const provider = new IssuedIdentityProvider({
    service: options.service,
    logger,
    sign: controlPlaneSigner({ address: options.controlPlane, caFile: options.caFile, token: options.token }),
  });
  const started = Date.now();
  try {
    await provider.start();
  } catch (err) {
    await provider.close();
    throw new Error(`no certificate for service ${options.service}: ${(err as Error).message}`);
  }
  logger.info({ spiffeId: provider.current()?.spiffeId, notAfter: provider.current()?.notAfter.toISOString(), ms: Date.now() - started }, 'certificate issued by the control plane');
  return provider;
}

function checkTrustBundle(caFile: string): void {
  try {
    readTrustBundle(caFile);
  } catch (err) {
    if (!(err instanceof TrustBundleError)) throw err;
    throw new Error(`--ca-file ${err.message}; it should hold the control plane's ca.crt`);
  }
}
