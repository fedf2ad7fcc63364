/**
 * A snapshot (SPEC §4 wire form) from the stored config and the instances discovery knows:
 * every service that has a policy, routes or instances appears, with its instances as
 * `endpoints` labelled by version. Pure, so the same input always gives the same output.
 */
import { ownEntry } from '../../common/config/own.js';
import type { SnapshotInput } from '../../common/config/schema.js';
import { isEndpoint, type Instance } from '../registry/discovery.js';
import type { PolicyInput, StoredConfig } from './resources.js';

/** The snapshot without its version; two equal bodies mean nothing changed for sidecars. */
export type SnapshotBody = Omit<SnapshotInput, 'version'>;

export function composeSnapshot(config: StoredConfig, instances: readonly Instance[]): SnapshotBody {
  const byService = new Map<string, Instance[]>();
  for (const instance of instances) {
    const list = byService.get(instance.service) ?? [];
    list.push(instance);
    byService.set(instance.service, list);
  }
  const names = new Set([...Object.keys(config.policies), ...Object.keys(config.routes), ...byService.keys()]);
  const services: NonNullable<SnapshotInput['services']> = {};
  for (const name of [...names].sort()) {
    const policy: PolicyInput = ownEntry(config.policies, name) ?? {};
    const own = byService.get(name) ?? [];
    services[name] = {
      ...(policy.protocol === undefined && own[0] ? { protocol: own[0].protocol } : {}),
      ...policy,
      endpoints: own.filter((i) => isEndpoint(i, policy.onlyPassing)).map((i) => ({ address: i.address, port: i.port, labels: { ...i.labels } })),
    };
  }
  const body: SnapshotBody = { services, routes: config.routes };
  if (config.intentions !== undefined) body.intentions = config.intentions;
  return body;
}
