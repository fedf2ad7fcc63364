/**
 * What the admin commands (get, split, apply, intention, explain, token) share: the
 * `--control-plane`, `--request-timeout` and `--output` flags, the client built from them and SKEIN_* env vars,
 * plain-text tables, and API errors turned into one readable message (with each problem
 * of a 422 on its own line).
 */
import { Option, type Command } from 'commander';
import { formatDuration } from '../../common/config/duration.js';
import { AdminApiError, AdminClient, DEFAULT_ADMIN_URL, DEFAULT_REQUEST_TIMEOUT_MS } from '../admin-client.js';
import { NO_SUCH_ENDPOINT } from '../../control-plane/admin-api/errors.js';
import { SERVICE } from '../answers.js';
import { durationFlagWithin, parseAdminUrl } from '../flag-values.js';
import { TryAgainError } from '../try-again-error.js';
import { UsageError } from '../usage-error.js';

export type OutputFormat = 'table' | 'json';

export interface AdminFlags {
  controlPlane?: string;
  requestTimeout: number;
  output: OutputFormat;
}

export function withAdminFlags(command: Command, printsData = true): Command {
  command.addOption(new Option('--control-plane <url>', `admin API of the control plane, a URL or HOST:PORT (default ${DEFAULT_ADMIN_URL})`).env('SKEIN_ADMIN_URL').argParser(parseAdminUrl));
  command.addOption(
    new Option('--request-timeout <duration>', 'give up on an admin API request after this long, 1ms to 24h (a stream: on its start)')
      .env('SKEIN_ADMIN_TIMEOUT')
      .argParser(durationFlagWithin('1ms', '24h'))
      .default(DEFAULT_REQUEST_TIMEOUT_MS, formatDuration(DEFAULT_REQUEST_TIMEOUT_MS)),
  );
  if (printsData) command.addOption(new Option('-o, --output <format>', 'table or json').choices(['table', 'json']).default('table'));
  return command;
}

export function adminClient(flags: AdminFlags): AdminClient {
  return new AdminClient(flags.controlPlane ?? DEFAULT_ADMIN_URL, adminTokenFromEnv(), flags.requestTimeout);
}

/**
 * SKEIN_ADMIN_TOKEN read as the control plane reads its own (control-plane/admin-token.ts):
 * trimmed, since the admin-token file ends in a newline and so does a Kubernetes Secret made
 * from it, and blank counts as unset. What is left must be one word of printable ASCII, as
 * every token is that the Bearer check can match: anything else is a usage error naming the
 * variable (exit 2), not a request that cannot be sent.
 */
export function adminTokenFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const token = env.SKEIN_ADMIN_TOKEN?.trim();
  if (!token) return undefined;
  if (!/^[\x21-\x7e]+$/.test(token)) throw new UsageError('SKEIN_ADMIN_TOKEN must hold the admin token alone: one word of printable ASCII characters, as in <data-dir>/admin-token');
  return token;
}

/**
 * Runs an admin action; an API error becomes an Error whose message main.ts prints (exit 1), or,
 * for a 503 with Retry-After, a TryAgainError (exit 75).
 */
export async function runAdmin(action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (err) {
    if (err instanceof AdminApiError && err.status === 503 && err.retryAfterSeconds !== undefined) {
      throw new TryAgainError(`${err.status} ${err.code}: ${err.message}; try again in ${err.retryAfterSeconds} s`);
    }
    if (err instanceof AdminApiError) {
      const detail = err.problems.length > 1 ? `\n  ${err.problems.join('\n  ')}` : '';
      // The control plane's router knows no such path: it is older than the command (skein apply, canary --pause came later).
      const older = err.status === 404 && err.message.startsWith(NO_SUCH_ENDPOINT) ? `; the control plane is older than this CLI and does not have this command's API: upgrade it to use the command` : '';
      throw new Error(`${err.status ? `${err.status} ${err.code}: ` : ''}${err.problems.length > 1 ? 'the request fails validation:' : err.message}${older}${detail}`);
    }
    throw err;
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** A left-aligned table with a header row; empty cells print as "-". */
export function printTable(headers: readonly string[], rows: readonly (readonly (string | number | null | undefined)[])[]): void {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === undefined || c === null || c === '' ? '-' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const lines = cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '));
  process.stdout.write(`${lines.join('\n')}\n`);
}

/**
 * Why a write the control plane stored did not reach sidecars: the text of its `Warning: 299`
 * when it answered `Skein-Published: false` (another stored entry keeps the config from being
 * composed), or undefined when it was published.
 */
export function notPublished(headers: Headers): string | undefined {
  if (headers.get('skein-published') !== 'false') return undefined;
  return warningOf(headers) ?? `stored but not published: sidecars keep snapshot ${headers.get('skein-snapshot-version')}`;
}

/**
 * What a write's answer warns of, for `notice`: that it was stored but not published (above),
 * or published during the resync hold after a control plane's start (`Skein-Held-Until`), which
 * sidecars running a snapshot get only when the hold ends; undefined when neither.
 */
export function writeWarning(headers: Headers): string | undefined {
  return notPublished(headers) ?? (headers.get('skein-held-until') ? warningOf(headers) : undefined);
}

/** The text of an answer's `Warning: 299 - "…"` header, unquoted, if it has one. */
export function warningOf(headers: Headers): string | undefined {
  const quoted = /^299 - "(.*)"$/.exec(headers.get('warning') ?? '')?.[1];
  return quoted?.replace(/\\(.)/g, '$1');
}

export function formatSplit(split: Readonly<Record<string, number>> | undefined): string {
  return split ? Object.entries(split).map(([s, w]) => `${s}=${w}`).join(' ') : 'all endpoints';
}

/**
 * Fails (the control plane's 404, exit 1) when no policy, route or instance names `service`,
 * as `skein get services NAME` does: asked about a misspelt name, proxies, stat and tap would
 * otherwise answer with an empty table, "no traffic" or a wait for ever.
 */
export async function requireService(api: AdminClient, service: string): Promise<void> {
  await api.get(`/api/v1/services/${encodeURIComponent(service)}`, SERVICE);
}

