/** Placeholder until the data plane lands: see sidecar/README.md. */
import type { SidecarOptions } from './options.js';

export async function runSidecar(options: SidecarOptions): Promise<void> {
  throw new Error(`sidecar for ${options.service} is not built yet`);
}
