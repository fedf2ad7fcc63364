/**
 * Who is on the other end of a push stream: the service its TLS client certificate names
 * (a leaf from this CA, which grpc-js only reports when the chain verified, and valid now:
 * see ca/client-identity.ts), else the service its Hello's bootstrap token was issued for. A
 * stream with neither is refused, so nobody can announce endpoints for a service it is not.
 */
import * as grpc from '@grpc/grpc-js';
import { serviceOfClientCertificate } from '../ca/client-identity.js';
import { TokenError, type BootstrapTokens } from '../tokens.js';
import { StreamRejected, type Authenticate } from './session.js';

export function streamAuthenticator(tokens: BootstrapTokens, trustDomain: string): Authenticate {
  return async (call, hello) => {
    // Valid now, also on a resumed TLS session (client-identity.ts).
    const byCert = serviceOfClientCertificate(call.getAuthContext()?.sslPeerCertificate, trustDomain);
    if (byCert !== undefined) return byCert;
    if (!hello.token) throw new StreamRejected(grpc.status.UNAUTHENTICATED, 'no client certificate and no bootstrap token in Hello (start the sidecar with --token)');
    try {
      return await tokens.verify(hello.token);
    } catch (err) {
      if (err instanceof TokenError) throw new StreamRejected(grpc.status.UNAUTHENTICATED, err.message);
      throw err;
    }
  };
}
