/**
 * What the admin commands (get, split, apply, intention, explain, token) share: the
 * `--control-plane` and `--output` flags, the client built from them and SKEIN_* env vars,
 * plain-text tables, and API errors turned into one readable message (with each problem
 * of a 422 on its own line).
 */
import { Option, type Command } from 'commander';
import { AdminApiError, AdminClient } from '../admin-client.js';

export type OutputFormat = 'table' | 'json';

export interface AdminFlags {
  controlPlane?: string;
  output: OutputFormat;
}

export function withAdminFlags(command: Command, printsData = true): Command {
  command.addOption(new Option('--control-plane <url>', 'admin API of the control plane (default $SKEIN_ADMIN_URL or http://127.0.0.1:15080)'));
  if (printsData) command.addOption(new Option('-o, --output <format>', 'table or json').choices(['table', 'json']).default('table'));
  return command;
}

export function adminClient(flags: AdminFlags): AdminClient {
  return AdminClient.fromEnv(flags.controlPlane);
}

/** Runs an admin action; an API error becomes an Error whose message main.ts prints (exit 1). */
export async function runAdmin(action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (err) {
    if (err instanceof AdminApiError) {
      const detail = err.problems.length > 1 ? `\n  ${err.problems.join('\n  ')}` : '';
      throw new Error(`${err.status ? `${err.status} ${err.code}: ` : ''}${err.problems.length > 1 ? 'the request fails validation:' : err.message}${detail}`);
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

export function formatSplit(split: Readonly<Record<string, number>> | undefined): string {
  return split ? Object.entries(split).map(([s, w]) => `${s}=${w}`).join(' ') : 'all endpoints';
}
