/**
 * A rule's path rewrite (Consul's PrefixRewrite, Envoy's prefix_rewrite): the prefix the rule
 * matched is replaced, the rest of the path and the query kept. Pure and shared: the sidecar
 * rewrites what it forwards with it, and `skein explain` shows the path the app would get.
 */

/** `target` (origin-form) with `prefix` replaced by `replacement`; as it is when it does not start with it (`OPTIONS *` under a `/` rule). */
export function rewritePrefix(target: string, prefix: string, replacement: string): string {
  return target.startsWith(prefix) ? replacement + target.slice(prefix.length) : target;
}
