/**
 * A route rule's changes to what it forwards and what it passes back (`rewrite`,
 * `requestHeaders`, `responseHeaders`; Istio's VirtualService `rewrite` and `headers`, Consul's
 * service-router `PrefixRewrite` and `RequestHeaders`/`ResponseHeaders`). The request is
 * changed once, after routing and before the sidecar stamps its own headers, so every try and
 * every mirror copy carries the same changes, added once; the answer's head is changed as it
 * is relayed. Header changes run remove, set, add, as Envoy's header parser removes before it
 * appends. Compiled per rule when a snapshot is installed: a rule without changes compiles to
 * null, so its requests pay one comparison each way.
 */
import type { HeaderChanges, RouteRule } from '../../common/config/schema.js';
import { rewritePrefix } from '../../common/routing/rewrite.js';
import { setHost } from './decode.js';
import { removeHeaders } from './headers.js';

/** Changes a flat `[name, value, ...]` header list in place. */
export type HeaderEdit = (headers: string[]) => void;

/** What a request's changes read and write (the Exchange). */
export interface ChangedRequest {
  /** The origin-form target forwarded. */
  url: string;
  readonly headers: string[];
}

export interface RequestChanges {
  apply(request: ChangedRequest): void;
}

/** remove, then set (every line of the name replaced by one), then add (one more line); null when there is nothing to do. */
export function compileHeaderEdit(changes: HeaderChanges | undefined): HeaderEdit | null {
  if (changes === undefined) return null;
  const set = Object.entries(changes.set ?? {});
  const removed = [...(changes.remove ?? []), ...set.map(([name]) => name)].map((name) => name.toLowerCase());
  const appended = [...set, ...Object.entries(changes.add ?? {})].flatMap(([name, value]) => [name.toLowerCase(), value]);
  if (removed.length === 0 && appended.length === 0) return null;
  return (headers) => {
    if (removed.length > 0) removeHeaders(headers, removed);
    for (let i = 0; i < appended.length; i++) headers.push(appended[i]!);
  };
}

class RuleRequestChanges implements RequestChanges {
  constructor(
    private readonly prefix: string | undefined,
    private readonly replacement: string,
    private readonly host: string | undefined,
    private readonly edit: HeaderEdit | null,
  ) {}

  apply(request: ChangedRequest): void {
    if (this.prefix !== undefined) request.url = rewritePrefix(request.url, this.prefix, this.replacement);
    if (this.host !== undefined) setHost(request.headers, this.host);
    if (this.edit !== null) this.edit(request.headers);
  }
}

/** The request side of `rule`: its rewrite and request header changes, or null without either. */
export function compileRequestChanges(rule: RouteRule): RequestChanges | null {
  const edit = compileHeaderEdit(rule.requestHeaders);
  const rewrite = rule.rewrite;
  if (rewrite === undefined && edit === null) return null;
  // The schema takes a prefix rewrite only on a rule matching a pathPrefix.
  const replacement = rewrite?.pathPrefix;
  return new RuleRequestChanges(replacement === undefined ? undefined : rule.match.pathPrefix, replacement ?? '', rewrite?.host, edit);
}
