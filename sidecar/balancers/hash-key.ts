/**
 * The hash key of a request for `lb: ring-hash` (ring-hash.ts): the value of the header,
 * cookie or query parameter the policy's `hashOn` names, compiled once per policy. A request
 * without it has no key and is balanced at random, as Envoy does. `host` reads the authority
 * the request is forwarded with, as route matches do (match.ts), so HTTP/2's `:authority`
 * counts too.
 */
import type { HashOn } from '../../common/config/schema.js';
import { headerValue, type HeaderMap } from '../../common/routing/match.js';
import { ringHash } from './ring-hash.js';

export type HashKeyOf = (headers: HeaderMap, url: string, authority: string) => number | undefined;
/** The value a request is hashed by, as sent; undefined when it does not carry it. */
export type HashValueOf = (headers: HeaderMap, url: string, authority: string) => string | undefined;

export function compileHashValue(on: HashOn): HashValueOf {
  if (on.header !== undefined) {
    const name = on.header.toLowerCase();
    if (name === 'host') return (_headers, _url, authority) => (authority === '' ? undefined : authority);
    return (headers) => headerValue(headers, name);
  }
  if (on.cookie !== undefined) {
    const name = on.cookie;
    // An empty cookie (`sid=`, what many apps leave after a logout) names no session: hashed, it
    // would send every such client to one endpoint. Envoy's cookie hash takes it as absent too.
    return (headers) => cookieValue(headers.cookie, name) || undefined;
  }
  const name = on.query!;
  return (_headers, url) => queryValue(url, name);
}

export function compileHashKey(on: HashOn | undefined): HashKeyOf | null {
  if (on === undefined) return null;
  const valueOf = compileHashValue(on);
  return (headers, url, authority) => {
    const value = valueOf(headers, url, authority);
    return value === undefined ? undefined : ringHash(value);
  };
}

/** The first cookie named `name` in the Cookie lines (RFC 6265 §4.2.1: `a=1; b=2`), its value as sent. */
export function cookieValue(cookie: string | string[] | undefined, name: string): string | undefined {
  if (cookie === undefined) return undefined;
  for (const line of typeof cookie === 'string' ? [cookie] : cookie) {
    for (const pair of line.split(';')) {
      const eq = pair.indexOf('=');
      if (eq > 0 && pair.slice(0, eq).trim() === name) return pair.slice(eq + 1).trim();
    }
  }
  return undefined;
}

/** The first query parameter named `name` in the request target, decoded as URLSearchParams does. */
export function queryValue(url: string, name: string): string | undefined {
  const q = url.indexOf('?');
  if (q < 0) return undefined;
  return new URLSearchParams(url.slice(q + 1)).get(name) ?? undefined;
}
