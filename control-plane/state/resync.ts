/**
 * The resync hold after a start, as the config checks see it: the built-in registry is empty
 * until sidecars reconnect, so a subset known only as its instances' `version` label is
 * unknown for that while. A refusal resting on it would read as permanent ("no instance has
 * version=v2") what is only not known yet, so it is told apart (RegistryResyncError).
 */
import { ConfigError } from '../../common/config/parse.js';

/** The push server's resync hold after a start (PushServer.holdEnds): when it ends while it lasts. */
export interface ResyncHold {
  holdEnds(): number | undefined;
}

/**
 * A write refused for what the registry does not know (an unknown subset, no healthy instance)
 * while it refills after a start (until `until`, ms since epoch): the same write may pass once
 * the sidecars have reconnected. A ConfigError still, so what retries a refused split after the
 * hold (a resumed canary rollout) treats it alike.
 */
export class RegistryResyncError extends ConfigError {
  constructor(
    problems: string[],
    readonly until: number,
  ) {
    super(problems);
    this.name = 'RegistryResyncError';
  }
}

/** The error for `problems` that rest on the registry: RegistryResyncError while `hold` lasts, else a ConfigError. */
export function registryRefusal(problems: string[], hold: ResyncHold | undefined): ConfigError {
  const until = hold?.holdEnds();
  return until === undefined ? new ConfigError(problems) : new RegistryResyncError(problems, until);
}
