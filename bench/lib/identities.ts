/**
 * The certificates of a benchmark run, made fresh in its temp dir: one CA and two leaves with
 * SPIFFE URI SANs (`spiffe://skein.local/service/<name>`) and the service name as CN, used by
 * both proxy pairs (Skein reads the URI SAN; nginx checks the name against the CN).
 */
import { makeCa, makeLeaf, writeIdentity } from '../../test/support/certs.js';

export interface LeafFiles {
  readonly service: string;
  readonly certFile: string;
  readonly keyFile: string;
}

export interface BenchIdentities {
  readonly caFile: string;
  /** The calling side (outbound proxy). */
  readonly client: LeafFiles;
  /** The called side (inbound proxy). */
  readonly server: LeafFiles;
}

export function makeBenchIdentities(dir: string, clientService: string, serverService: string): BenchIdentities {
  const ca = makeCa('Skein Bench CA');
  const client = writeIdentity(dir, clientService, makeLeaf(ca, clientService));
  const server = writeIdentity(dir, serverService, makeLeaf(ca, serverService));
  return {
    caFile: client.caFile,
    client: { service: clientService, certFile: client.certFile, keyFile: client.keyFile },
    server: { service: serverService, certFile: server.certFile, keyFile: server.keyFile },
  };
}
