/**
 * `host:port` as URLs, Host headers and logs write it (RFC 3986 §3.2.2): an IPv6 address in
 * brackets, so `::1` port 9001 reads `[::1]:9001`, not `::1:9001`.
 */
export function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

export function hostPort(host: string, port: number): string {
  return `${hostForUrl(host)}:${port}`;
}
