/** The sidecars the request-body tests (malformed-body, stalled-body) send through. */
import type { ServicePolicyInput } from '../../common/config/schema.js';
import { freePorts, makeCa, makeLeaf, tempDir, writeIdentity, writeTempConfig, type Processes, type SpawnedSidecar, type TestUpstream } from '../support/index.js';

export interface BodyTestSidecars {
  /** web with an identity: its calls to `catalog` go over the mux to catalog's sidecar, whose app is `app`. */
  readonly web: SpawnedSidecar;
  /** web without one: its calls to each of the `plainServices` go to `app` as a plain HTTP/1.1 endpoint. */
  readonly plainWeb: SpawnedSidecar;
  /** catalog's sidecar, whose inbound listener takes web's mux streams. */
  readonly catalog: SpawnedSidecar;
}

/**
 * Starts catalog's sidecar (mTLS) in front of `app` and the two web sidecars; `catalog` and the
 * `plainServices` all have `policy`, and every call is allowed.
 */
export async function startBodyTestSidecars(
  procs: Processes,
  app: Pick<TestUpstream, 'port'>,
  plainServices: readonly string[],
  policy: Omit<ServicePolicyInput, 'endpoints'> = {},
): Promise<BodyTestSidecars> {
  const ca = makeCa();
  const dir = tempDir();
  const [catalogIn] = (await freePorts(1)) as [number];
  const at = (port: number) => ({ ...policy, endpoints: [{ address: '127.0.0.1', port, labels: { version: 'v1' } }] });
  const services = Object.fromEntries([['catalog', at(catalogIn)], ...plainServices.map((name) => [name, at(app.port)])]);
  const config = writeTempConfig({ services, intentions: { defaultAction: 'allow' } }, dir);
  const id = (name: string) => writeIdentity(dir, name, makeLeaf(ca, name));
  const catalog = await procs.sidecar({ service: 'catalog', appPort: app.port, config, inboundPort: catalogIn, identity: id('catalog') });
  const web = await procs.sidecar({ service: 'web', appPort: app.port, config, identity: id('web') });
  const plainWeb = await procs.sidecar({ service: 'web', appPort: app.port, config });
  return { web, plainWeb, catalog };
}
