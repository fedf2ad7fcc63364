/**
 * Transparent mode: iptables rules, run once per pod by an init container, that send the
 * app's outbound HTTP (by destination port) to the sidecar's outbound listener. The sidecar
 * routes by the Host header (SPEC §3 addressing (a)), so it needs no original-destination
 * lookup. Its own traffic (uid SIDECAR_UID) and loopback traffic are let through.
 */
import { SIDECAR_UID } from './options.js';

export interface RedirectSpec {
  readonly outboundPort: number;
  readonly redirectPorts: readonly number[];
  readonly excludeUid?: number;
}

const CHAIN = 'SKEIN_OUTPUT';

/**
 * A POSIX shell script that installs the rules; running it again leaves the same rules
 * (the chain is flushed and refilled, the jump added only once), since an init container
 * can be re-run in the same network namespace.
 */
export function redirectScript(spec: RedirectSpec): string {
  const uid = spec.excludeUid ?? SIDECAR_UID;
  const lines = [
    'set -e',
    `iptables -t nat -N ${CHAIN} 2>/dev/null || iptables -t nat -F ${CHAIN}`,
    `iptables -t nat -A ${CHAIN} -m owner --uid-owner ${uid} -j RETURN`,
    `iptables -t nat -A ${CHAIN} -d 127.0.0.0/8 -j RETURN`,
    ...spec.redirectPorts.map((port) => `iptables -t nat -A ${CHAIN} -p tcp --dport ${port} -j REDIRECT --to-ports ${spec.outboundPort}`),
    `iptables -t nat -C OUTPUT -p tcp -j ${CHAIN} 2>/dev/null || iptables -t nat -A OUTPUT -p tcp -j ${CHAIN}`,
  ];
  return `${lines.join('\n')}\n`;
}
