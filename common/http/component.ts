/**
 * The header every answer of a Skein admin listener carries, saying whose it is: the control
 * plane's admin API answers `control-plane`, a sidecar's admin port `sidecar`. The CLI refuses
 * an answer that names another component than the one it asked (cli/admin-client.ts), where a
 * sidecar's JSON 404 read like the control plane's. Control planes older than the header send
 * none, so its absence alone proves nothing.
 */
export const COMPONENT_HEADER = 'skein-component';

export type SkeinComponent = 'control-plane' | 'sidecar';
