/**
 * Decode: what the request names. Outbound, the destination service comes from the Host
 * header or from an absolute-form request target (`GET http://catalog/items`, HTTP proxy
 * mode); a dedicated `--upstream` listener has its service fixed and skips this. The Host
 * sent on names what was routed: an absolute-form target's authority replaces the Host
 * received (RFC 9112 §3.2.2), and on a dedicated port a request without one, or with one
 * naming the sidecar's own address (`127.0.0.1:7001`, `localhost:7001`: what a client
 * pointed at the port sends), gets the service's name.
 */
/**
 * What may follow the service's name in a host (after one trailing dot is dropped, as a fully
 * qualified name carries one): Consul's `service.consul` and `service.<dc>.consul`, and
 * Kubernetes' `svc`, `<ns>.svc` and `<ns>.svc.<cluster domain>` (`cluster.local` or any
 * other). The namespace is not checked: a mesh has one service of a name. Kubernetes' short
 * `<svc>.<ns>` is not read, since nothing tells it from an outside name (`stripe.com` would
 * go to a service called `stripe`), as Istio, which knows the namespaces, can.
 */
const SERVICE_SUFFIX = /^(?:service(?:\.[a-z0-9-]+)?\.consul|svc|[a-z0-9-]+\.svc(?:\.[a-z0-9-]+)*)$/;

/** The service an authority (`host[:port]`) names, or '' when it names none. */
export function serviceFromAuthority(authority: string): string {
  let host = authority.toLowerCase();
  if (host.startsWith('[')) return '';
  const colon = host.lastIndexOf(':');
  if (colon >= 0) host = host.slice(0, colon);
  if (host.endsWith('.')) host = host.slice(0, -1);
  const dot = host.indexOf('.');
  return dot < 0 ? host : SERVICE_SUFFIX.test(host.slice(dot + 1)) ? host.slice(0, dot) : '';
}

/**
 * serviceFromAuthority with its answers kept per authority (a mesh sees few), so a request
 * pays one map lookup; at most MEMO_LIMIT of them, so callers naming endless hosts cannot
 * grow it. One per outbound listener context.
 */
export class AuthorityServices {
  private static readonly MEMO_LIMIT = 1024;
  private readonly memo = new Map<string, string>();

  serviceOf(authority: string): string {
    const known = this.memo.get(authority);
    if (known !== undefined) return known;
    const service = serviceFromAuthority(authority);
    if (this.memo.size < AuthorityServices.MEMO_LIMIT) this.memo.set(authority, service);
    return service;
  }
}

const LOOPBACK_AUTHORITY = /^(?:127(?:\.[0-9]{1,3}){3}|\[::1\]|localhost\.?)(?::[0-9]*)?$/i;

/**
 * Whether an authority names a loopback address (`127.0.0.1[:port]`, `[::1][:port]`,
 * `localhost[:port]`), which on a dedicated `--upstream` port is the sidecar's own listener,
 * not a name the app gave its destination. Service names start with a lowercase letter, so
 * the common Host is told apart by its first character.
 */
export function isLoopbackAuthority(authority: string): boolean {
  const c = authority.charCodeAt(0) | 0x20;
  return (c === 0x31 /* 1 */ || c === 0x7b /* [ | 0x20 */ || c === 0x6c /* l */) && LOOPBACK_AUTHORITY.test(authority);
}

/** For an absolute-form target `http://authority/path?q`: the authority; else undefined. */
export function absoluteAuthority(url: string): string | undefined {
  if (url.charCodeAt(0) === 47 /* / */) return undefined;
  const m = /^https?:\/\/([^/?#]*)/i.exec(url);
  return m ? m[1] : undefined;
}

/**
 * The origin-form target of an absolute-form one: `http://a/b?c` → `/b?c`. An OPTIONS for the
 * server itself, `OPTIONS http://a` (no path, no query), goes on as `OPTIONS *`, which a proxy
 * forwarding to the origin must send (RFC 9112 §3.2.4), not as one for the resource `/`.
 */
export function originForm(url: string, authority: string, method: string): string {
  const start = url.indexOf('//') + 2 + authority.length;
  const rest = url.slice(start);
  return rest === '' ? (method === 'OPTIONS' ? '*' : '/') : rest.charCodeAt(0) === 63 /* ? */ ? `/${rest}` : rest;
}

/** The path of a target without its query, for route matching. */
export function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/** Where the Host value sits in a flat `[name, value, ...]` list, or -1 without one. */
export function hostIndex(headers: readonly string[]): number {
  for (let i = 0; i < headers.length; i += 2) if (isHost(headers[i]!)) return i + 1;
  return -1;
}

/**
 * An HTTP/2 request may carry Host beside `:authority` (RFC 9113 §8.3.1), and decode forwards
 * both as Host; one goes on. The same authority twice is sent once; differing ones make the
 * request malformed (§8.3.1 again): what is wrong with it is returned, for a 400.
 */
export function singleHost(headers: string[]): string | undefined {
  const at = hostIndex(headers);
  if (at < 0) return undefined;
  const host = headers[at]!;
  // Nearly every request has one Host: the list is rewritten only from a second one on.
  let w = at + 1;
  while (w < headers.length && !isHost(headers[w]!)) w += 2;
  for (let r = w; r < headers.length; r += 2) {
    const name = headers[r]!;
    if (isHost(name)) {
      if (headers[r + 1]!.toLowerCase() !== host.toLowerCase()) return `the request names two authorities, ${JSON.stringify(host)} and ${JSON.stringify(headers[r + 1])} (:authority and Host)`;
      continue;
    }
    headers[w++] = name;
    headers[w++] = headers[r + 1]!;
  }
  headers.length = w;
  return undefined;
}

function isHost(name: string): boolean {
  return name.length === 4 && name.toLowerCase() === 'host';
}

/** Sets Host in a flat `[name, value, ...]` list: the one there is replaced, or one added. */
export function setHost(headers: string[], value: string): void {
  const at = hostIndex(headers);
  if (at < 0) headers.push('host', value);
  else headers[at] = value;
}
