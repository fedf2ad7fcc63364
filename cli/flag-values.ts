/** Parsers of flag values shared by several commands; a bad value is a usage error (exit 2). */
import { InvalidArgumentError } from 'commander';
import type { ZodIssue, ZodType, ZodTypeDef } from 'zod';
import { parseDuration } from '../common/config/duration.js';
import { formatPath } from '../common/config/parse.js';
import { formatSize, parseSize } from '../common/config/size.js';
import { endpointAddress, instanceId, methodName, requestPath, serviceName } from '../common/config/schema.js';
import { consulUrl } from '../common/consul/client.js';
import { isTrustDomain, TRUST_DOMAIN_RULE } from '../common/identity/spiffe.js';
import { isUnspecifiedHost } from '../common/net/loopback.js';
import { UsageError } from './usage-error.js';

/** A duration flag ("250ms", "10s", "1m30s") in milliseconds. */
export function parseDurationFlag(value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined) throw new InvalidArgumentError(`not a duration: ${value} (use e.g. 10s)`);
  return ms;
}

/**
 * A duration flag held to a range, for values a process cannot work with outside it (a
 * certificate already expired when issued, a keepalive that pings without pause).
 */
export function durationFlagWithin(min: string, max: string): (value: string) => number {
  const [minMs, maxMs] = [parseDuration(min)!, parseDuration(max)!];
  return (value) => {
    const ms = parseDurationFlag(value);
    if (ms < minMs || ms > maxMs) throw new InvalidArgumentError(`${value} is out of range: must be between ${min} and ${max}`);
    return ms;
  };
}

/** A size flag ("64KiB", "10MiB", plain bytes) in bytes. */
export function parseSizeFlag(value: string): number {
  const bytes = parseSize(value);
  if (bytes === undefined) throw new InvalidArgumentError(`not a size: ${value} (use e.g. 64KiB, 10MiB, 1GB or plain bytes)`);
  return bytes;
}

/** A size flag held to a range, for a limit the sidecar cannot work with outside it. */
export function sizeFlagWithin(min: number, max: number): (value: string) => number {
  return (value) => {
    const bytes = parseSizeFlag(value);
    if (bytes < min || bytes > max) throw new InvalidArgumentError(`${value} is out of range: must be between ${formatSize(min)} and ${formatSize(max)}`);
    return bytes;
  };
}

/** A size flag that must be above zero (a limit of nothing would refuse every request). */
export function parsePositiveSizeFlag(value: string): number {
  const bytes = parseSizeFlag(value);
  if (bytes === 0) throw new InvalidArgumentError(`must be more than 0 bytes (got ${value})`);
  return bytes;
}

/** `HOST:PORT` or `[v6]:PORT`, with a port from 1 to 65535. */
const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/;

function isHostPort(value: string): boolean {
  const port = Number(HOST_PORT.exec(value)?.[1] ?? 0);
  return port >= 1 && port <= 65535;
}

/** `HOST:PORT` (or `[v6]:PORT`) of a gRPC target: one without a port would be retried forever. */
export function parseHostPort(value: string): string {
  if (!isHostPort(value)) throw new InvalidArgumentError(`expected HOST:PORT, e.g. 127.0.0.1:15012 (got ${JSON.stringify(value)})`);
  return value;
}

/** `--trust-domain`: a trust domain outside the SPIFFE rule would get certificates no sidecar accepts, so every sidecar would retry forever. */
export function parseTrustDomain(value: string): string {
  if (!isTrustDomain(value)) throw new InvalidArgumentError(`"${value}" is not a SPIFFE trust domain: use ${TRUST_DOMAIN_RULE}`);
  return value;
}

/**
 * `--trust-domain-alias`, repeatable: each value adds to `previous`, and one value may hold a
 * comma-separated list (no trust domain has a comma), so SKEIN_TRUST_DOMAIN_ALIAS, read once,
 * can name several, as SKEIN_UPSTREAM does.
 */
export function parseTrustDomainAliases(value: string, previous: readonly string[] = []): string[] {
  return [...previous, ...value.split(',').map((domain) => parseTrustDomain(domain.trim()))];
}

/** `--consul`: an agent URL (or host:port); refused here so a typo is a usage error, not a failed start. */
export function parseConsulAddress(value: string): string {
  try {
    consulUrl(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return value;
}

/**
 * `CONSUL_HTTP_ADDR`, for a command whose `--consul` was not given: checked as the flag is, so
 * a bad value is a usage error (exit 2) naming the variable, not a failed start.
 */
export function consulAddressFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env.CONSUL_HTTP_ADDR;
  if (!value) return undefined;
  try {
    consulUrl(value, env);
  } catch (err) {
    throw new UsageError(`CONSUL_HTTP_ADDR=${value}: ${(err as Error).message}`);
  }
  return value;
}

/** A parser of values the mesh config's own schema checks, so the CLI refuses what the control plane would (exit 2, before connecting). */
function checkedBy(schema: ZodType<string>): (value: string) => string {
  return (value) => {
    const result = schema.safeParse(value);
    if (!result.success) throw new InvalidArgumentError(result.error.issues[0]!.message);
    return value;
  };
}

/** A service name argument: a DNS label, as the mesh config requires. */
export const parseServiceName = checkedBy(serviceName);

/** `--instance-id`: Consul's service ID and the Hello's instance id, by their shared rule. */
export const parseInstanceId = checkedBy(instanceId);

/** An HTTP method, as routes and `skein explain` take it: a token (`G T` is none, so no request has it). */
export const parseMethod = checkedBy(methodName);

/** A request path or path prefix: one without the leading "/" no request has. */
export const parseRequestPath = checkedBy(requestPath);

/** RFC 1123 subdomain, as Kubernetes requires of most object names (ConfigMaps, Secrets). */
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** The name of a Kubernetes object a manifest refers to: one the API server refuses would leave the pod waiting for a volume that cannot exist. */
export function parseKubernetesName(value: string): string {
  if (!DNS_SUBDOMAIN.test(value)) {
    throw new InvalidArgumentError(`not a Kubernetes object name: lowercase letters, digits, "-" and ".", starting and ending with a letter or digit, at most 253 characters`);
  }
  return value;
}

// A container image reference, by the grammar of github.com/distribution/reference:
// [domain[:port]/]path[:tag][@digest], the path in lowercase.
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9A-Fa-f:]+\\])(?::[0-9]+)?`;
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';
const IMAGE_REFERENCE = new RegExp(`^(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*(?::${TAG})?(?:@${DIGEST})?$`);

/** `--image`: a reference the runtime cannot pull would leave every injected pod unable to start. */
export function parseImageReference(value: string): string {
  if (!IMAGE_REFERENCE.test(value)) {
    throw new InvalidArgumentError(`not an image reference: expected e.g. skein:0.1.0 or registry.example.com/skein:0.1.0 (repository in lowercase)`);
  }
  return value;
}

/**
 * `--advertise-address`: what other sidecars connect to, so an IP address or a host name; a
 * URL or `HOST:PORT` would be registered as given and fail every caller's connect, and the
 * unspecified address (0.0.0.0, ::) reaches nobody.
 */
export function parseAdvertiseAddress(value: string): string {
  const result = endpointAddress.safeParse(value);
  if (!result.success) throw new InvalidArgumentError(result.error.issues[0]!.message);
  if (isUnspecifiedHost(value)) throw new InvalidArgumentError(`${value} is the unspecified address, which no caller can connect to: give this host's address`);
  return value;
}

/**
 * An admin API address: an http(s) URL, or HOST:PORT for http://HOST:PORT (the form `skein
 * sidecar --control-plane` takes). It may have a path (a proxy in front), but no query or
 * fragment: the API's paths are appended to it, so `?x=1` would end up before them.
 */
export function parseAdminUrl(value: string): string {
  const hasScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(value);
  const url = URL.parse(hasScheme ? value : `http://${value}`);
  if (!url || (hasScheme ? !/^https?:$/.test(url.protocol) || !url.hostname : !isHostPort(value))) {
    throw new InvalidArgumentError(`expected an admin API URL such as http://127.0.0.1:15080 (or HOST:PORT), got ${value}`);
  }
  if (/[?#]/.test(value)) throw new InvalidArgumentError(`an admin API URL has no query or fragment (the API's paths go after it), got ${value}`);
  return url.href.replace(/\/+$/, '');
}

/**
 * Checks a request body built from flags against the server's own schema before it is sent,
 * so a bad value is a usage error naming its flag (exit 2) rather than a 422 (exit 1).
 * `flags` maps a body path (e.g. `thresholds.maxP99`) to the flag that sets it. The schema's
 * own (custom) messages name another field as `"path"` (`must differ from "from"`): that too
 * is said as its flag (`--to: must differ from --from`).
 */
export function checkFlagValues<Out, In>(schema: ZodType<Out, ZodTypeDef, In>, body: unknown, flags: Readonly<Record<string, string>>): void {
  const result = schema.safeParse(body);
  if (result.success) return;
  const flagOf = (path: string): string => flags[path] ?? path;
  const message = (issue: ZodIssue): string => (issue.code === 'custom' ? issue.message.replace(/"([\w.]+)"/g, (quoted, path: string) => flags[path] ?? quoted) : issue.message);
  throw new UsageError(result.error.issues.map((issue) => `${flagOf(formatPath(issue.path))}: ${message(issue)}`).join('; '));
}
