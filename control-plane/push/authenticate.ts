/**
 * Who is on the other end of a push stream: the service its TLS client certificate names
 * (a leaf from this CA, which grpc-js only reports when the chain verified), else the
 * service its Hello's bootstrap token was issued for. A stream with neither is refused, so
 * nobody can announce endpoints for a service it is not.
 */
import * as grpc from '@grpc/grpc-js';
import { parseServiceSpiffeId, spiffeIdOf } from '../../common/identity/spiffe.js';
import { TokenError, type BootstrapTokens } from '../tokens.js';
import { StreamRejected, type Authenticate } from './session.js';

export function streamAuthenticator(tokens: BootstrapTokens, trustDomain: string): Authenticate {
  return async (call, hello) => {
    const id = spiffeIdOf(call.getAuthContext()?.sslPeerCertificate);
    const byCert = id ? parseServiceSpiffeId(id) : undefined;
    if (byCert?.trustDomain === trustDomain) return byCert.service;
    if (!hello.token) throw new StreamRejected(grpc.status.UNAUTHENTICATED, 'no client certificate and no bootstrap token in Hello (start the sidecar with --token)');
    try {
      return await tokens.verify(hello.token);
    } catch (err) {
      if (err instanceof TokenError) throw new StreamRejected(grpc.status.UNAUTHENTICATED, err.message);
      throw err;
    }
  };
}
