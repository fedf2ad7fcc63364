/**
 * Who is on the other end of a push stream: the service its TLS client certificate names
 * (a leaf from this CA, which grpc-js only reports when the chain verified, and valid now:
 * see ca/client-identity.ts), else the service its Hello's bootstrap token was issued for. A
 * stream with neither is refused, so nobody can announce endpoints for a service it is not.
 */
import * as grpc from '@grpc/grpc-js';
import { foreignTrustDomainNote, serviceOfClientCertificate } from '../ca/client-identity.js';
import { TokenError, type BootstrapTokens } from '../tokens.js';
import { StreamRejected, type Authenticate } from './session.js';

/** `trustDomains`: the CA's, then its aliases (a certificate of one still proves its service). */
export function streamAuthenticator(tokens: BootstrapTokens, trustDomains: readonly string[]): Authenticate {
  return async (call, hello) => {
    // Valid now, also on a resumed TLS session (client-identity.ts).
    const cert = call.getAuthContext()?.sslPeerCertificate;
    const byCert = serviceOfClientCertificate(cert, trustDomains);
    if (byCert !== undefined) return byCert;
    const note = foreignTrustDomainNote(cert, trustDomains);
    if (!hello.token) throw new StreamRejected(grpc.status.UNAUTHENTICATED, `no client certificate and no bootstrap token in Hello (start the sidecar with --token)${note}`);
    try {
      return await tokens.verify(hello.token);
    } catch (err) {
      if (err instanceof TokenError) throw new StreamRejected(grpc.status.UNAUTHENTICATED, `${err.message}${note}`);
      throw err;
    }
  };
}
