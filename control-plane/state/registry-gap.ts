/**
 * When the instances the config checks see may be incomplete: during the resync hold after a
 * start (the built-in registry is empty until sidecars reconnect), or while Consul's catalog has
 * not been read since the start. A subset known only as its instances' `version` label is unknown
 * then, so a refusal resting on it would read as final ("no instance has version=v2") what is
 * only not known yet: it is told apart (InstancesNotKnownError), to be tried again.
 */
import { ConfigError } from '../../common/config/parse.js';
import { BLOCKING_QUERY_BACKOFF_MAX_MS } from '../../common/consul/blocking-query.js';
import type { Discovery } from '../registry/discovery.js';

/** The push server's resync hold after a start, for the answers to writes (PushServer.holdEnds): when it ends, while it keeps a sidecar's snapshot. */
export interface ResyncHold {
  holdEnds(): number | undefined;
}

/** The push server's resync hold after a start, for the registry (PushServer.resyncEnds): when it ends, while it lasts. */
export interface ResyncWindow {
  resyncEnds(): number | undefined;
}

/** Why instances may be missing now, and when to ask again (ms since epoch). */
export interface RegistryGap {
  readonly why: string;
  readonly until: number;
}

/**
 * A write refused for what the registry does not know (an unknown subset, no healthy instance)
 * while it may be incomplete: the same write may pass once it is not. A ConfigError still, so
 * what retries a refused split later (a resumed canary rollout) treats it alike.
 */
export class InstancesNotKnownError extends ConfigError {
  constructor(
    problems: string[],
    readonly gap: RegistryGap,
  ) {
    super(problems);
    this.name = 'InstancesNotKnownError';
  }
}

/** The gap in what `discovery` knows now, if there is one: Consul's catalog unread, or the resync hold. */
export function registryGap(discovery: Discovery, hold: ResyncWindow | undefined): RegistryGap | undefined {
  // Read again within the blocking query's longest backoff.
  const unread = discovery.unknown?.();
  if (unread !== undefined) return { why: `${unread}, so no instance is known`, until: Date.now() + BLOCKING_QUERY_BACKOFF_MAX_MS };
  const until = hold?.resyncEnds();
  if (until === undefined) return undefined;
  return {
    why:
      'the control plane is still resyncing with its sidecars after its start, and the instances of those not reconnected yet are missing ' +
      `until its resync hold ends at ${new Date(until).toISOString()} (in ${Math.ceil((until - Date.now()) / 1000)} s)`,
    until,
  };
}

/** The error for `problems` that rest on the registry: InstancesNotKnownError during a `gap`, else a ConfigError. */
export function registryRefusal(problems: string[], gap: RegistryGap | undefined): ConfigError {
  return gap === undefined ? new ConfigError(problems) : new InstancesNotKnownError(problems, gap);
}
