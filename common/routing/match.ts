/**
 * Route matches (SPEC §4 `match`) compiled once into plain checks. `matches` is the request
 * path's test; `explain` says in words why a request fails each check, for `skein explain`.
 * Path and header regexes match the whole value (as Envoy's safe_regex does), with their
 * backtracking bounded (route-regex.ts). A check of `host` reads the authority the request is
 * forwarded with, not the headers: an HTTP/2 request has its `:authority` and no `host`, and
 * an absolute-form one is sent on with its target's authority as Host, so the headers received
 * would give each protocol another answer (Envoy treats host and :authority as one too).
 */
import { ownEntry } from '../config/own.js';
import type { RouteMatch } from '../config/schema.js';
import { wholeValueRegExp } from './route-regex.js';

/** Request headers with lowercase names, as node's `IncomingMessage.headers` holds them. */
export type HeaderMap = Readonly<Record<string, string | string[] | undefined>>;

type PathCheck =
  | { readonly kind: 'prefix'; readonly value: string }
  | { readonly kind: 'exact'; readonly value: string }
  | { readonly kind: 'regex'; readonly value: string; readonly regex: RegExp };

interface HeaderCheck {
  readonly name: string;
  /** It checks `host`, so it reads the forwarded authority (decided here, once). */
  readonly authority: boolean;
  readonly kind: 'exact' | 'prefix' | 'regex' | 'present' | 'absent';
  readonly value: string;
  readonly regex: RegExp | undefined;
}

export interface CompiledMatch {
  /** False when no check reads headers (but for `host`, which reads the authority), so callers need not build a header map. */
  readonly usesHeaders: boolean;
  /** True when it checks nothing (no method, header or path other than the prefix `/`): every request matches. */
  readonly matchesAll: boolean;
  /** True when only requests carrying some header can match (a header check other than `present: false`): opted-in requests, not ordinary ones. */
  readonly needsHeader: boolean;
  /** `authority` is the one the request is forwarded with (its Host, or HTTP/2's :authority); undefined without one. */
  matches(method: string, path: string, headers: HeaderMap | undefined, authority: string | undefined): boolean;
  /** Every reason the request does not match; empty when it does. */
  explain(method: string, path: string, headers: HeaderMap, authority: string | undefined): string[];
}

/** A header's repeated lines as the one value matched (RFC 9110 §5.3): joined with ", ", as the sidecar's HTTP/1 parser and node:http join them. */
export function joinFieldLines(values: readonly string[]): string {
  return values.join(', ');
}

/** A header's value as matched: its lines joined (joinFieldLines); undefined when absent. */
export function headerValue(headers: HeaderMap | undefined, name: string): string | undefined {
  const v = ownEntry(headers, name);
  return Array.isArray(v) ? joinFieldLines(v) : v;
}

function checkedValue(check: HeaderCheck, headers: HeaderMap | undefined, authority: string | undefined): string | undefined {
  return check.authority ? authority : headerValue(headers, check.name);
}

function compileHeader(name: string, m: NonNullable<RouteMatch['headers']>[string]): HeaderCheck {
  const lower = name.toLowerCase();
  const authority = lower === 'host';
  if (typeof m === 'string') return { name: lower, authority, kind: 'exact', value: m, regex: undefined };
  if (m.exact !== undefined) return { name: lower, authority, kind: 'exact', value: m.exact, regex: undefined };
  if (m.prefix !== undefined) return { name: lower, authority, kind: 'prefix', value: m.prefix, regex: undefined };
  if (m.regex !== undefined) return { name: lower, authority, kind: 'regex', value: m.regex, regex: wholeValueRegExp(m.regex) };
  return { name: lower, authority, kind: m.present === false ? 'absent' : 'present', value: '', regex: undefined };
}

function headerOk(check: HeaderCheck, value: string | undefined): boolean {
  switch (check.kind) {
    case 'present':
      return value !== undefined;
    case 'absent':
      return value === undefined;
    case 'exact':
      return value === check.value;
    case 'prefix':
      return value !== undefined && value.startsWith(check.value);
    case 'regex':
      return value !== undefined && check.regex!.test(value);
  }
}

function pathOk(check: PathCheck | undefined, path: string): boolean {
  if (check === undefined) return true;
  if (check.kind === 'prefix') return path.startsWith(check.value);
  if (check.kind === 'exact') return path === check.value;
  return check.regex.test(path);
}

/**
 * True when `match` checks nothing (no method, header or path other than the prefix `/`): every
 * request matches it. Pure, compiling nothing: config checks call it on matches still unchecked.
 */
export function matchesEveryRequest(match: RouteMatch): boolean {
  const anyPath = (match.pathPrefix === undefined || match.pathPrefix === '/') && match.path === undefined && match.pathRegex === undefined;
  return anyPath && match.method === undefined && Object.keys(match.headers ?? {}).length === 0;
}

export function compileMatch(match: RouteMatch): CompiledMatch {
  const path: PathCheck | undefined =
    match.pathPrefix !== undefined && match.pathPrefix !== '/'
      ? { kind: 'prefix', value: match.pathPrefix }
      : match.path !== undefined
        ? { kind: 'exact', value: match.path }
        : match.pathRegex !== undefined
          ? { kind: 'regex', value: match.pathRegex, regex: wholeValueRegExp(match.pathRegex) }
          : undefined;
  // The config's method names mean the upper-case methods (`get` is GET); a request's method is
  // compared as sent, since methods are case-sensitive (RFC 9110 §9.1).
  const methodList = match.method === undefined ? undefined : (Array.isArray(match.method) ? match.method : [match.method]).map((m) => m.toUpperCase());
  const methods = methodList && new Set(methodList);
  const headers = Object.entries(match.headers ?? {}).map(([name, m]) => compileHeader(name, m));

  return {
    // A `host` check reads the authority, given whatever this says.
    usesHeaders: headers.some((check) => !check.authority),
    matchesAll: matchesEveryRequest(match),
    needsHeader: headers.some((check) => check.kind !== 'absent'),
    matches(method, p, h, authority) {
      if (!pathOk(path, p)) return false;
      if (methods !== undefined && !methods.has(method)) return false;
      for (let i = 0; i < headers.length; i++) {
        const check = headers[i]!;
        if (!headerOk(check, checkedValue(check, h, authority))) return false;
      }
      return true;
    },
    explain(method, p, h, authority) {
      const why: string[] = [];
      if (!pathOk(path, p)) {
        if (path!.kind === 'prefix') why.push(`path ${p} does not start with ${path!.value}`);
        else if (path!.kind === 'exact') why.push(`path ${p} is not ${path!.value}`);
        else why.push(`path ${p} does not match regex ${path!.value}`);
      }
      if (methods !== undefined && !methods.has(method)) why.push(`method ${method} is not ${methodList!.join(' or ')}`);
      for (const check of headers) {
        const value = checkedValue(check, h, authority);
        if (headerOk(check, value)) continue;
        if (check.kind === 'absent') why.push(`header ${check.name} is present`);
        else if (value === undefined) why.push(`header ${check.name} missing`);
        else if (check.kind === 'exact') why.push(`header ${check.name} is ${JSON.stringify(value)}, not ${JSON.stringify(check.value)}`);
        else if (check.kind === 'prefix') why.push(`header ${check.name} ${JSON.stringify(value)} does not start with ${JSON.stringify(check.value)}`);
        else why.push(`header ${check.name} ${JSON.stringify(value)} does not match regex ${check.value}`);
      }
      return why;
    },
  };
}
