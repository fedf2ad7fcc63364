/**
 * Whether a host (an IP address or `localhost`, without brackets) names this host's loopback
 * interface, which nothing off this host can connect to: 127.0.0.0/8, ::1, or 127.x mapped
 * into IPv6.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || /^(?:::ffff:)?127\./.test(h);
}

/** The unspecified address (`0.0.0.0`, `::`): a listener on it takes every interface of this host. */
export function isUnspecifiedHost(host: string): boolean {
  return host === '0.0.0.0' || /^[0:]+$/.test(host);
}
