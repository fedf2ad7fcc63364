/** Flags that also read SKEIN_<FLAG> from the environment, shared by `skein sidecar` and `skein control-plane`. */
import { Option } from 'commander';

/** An option that also reads SKEIN_<FLAG_IN_CAPS> from the environment (`--app-port`: `SKEIN_APP_PORT`). */
export function envOption(flags: string, description: string): Option {
  const long = /--([a-z-]+)/.exec(flags)![1]!;
  return new Option(flags, description).env(`SKEIN_${long.toUpperCase().replace(/-/g, '_')}`);
}

