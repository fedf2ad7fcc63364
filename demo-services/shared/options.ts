/**
 * Flags every demo service takes, plus the ones a service declares for itself. Each flag can
 * also come from an env var (`DEMO_<FLAG_IN_CAPS>`), so an orchestrator may use either.
 */
import { parseArgs } from 'node:util';

export interface FlagSpec {
  readonly description: string;
  readonly default: string;
}

export const COMMON_FLAGS = {
  host: { description: 'address to listen on', default: '127.0.0.1' },
  port: { description: 'port to listen on (0 = any free port; the bound port is logged and written to --port-file)', default: '0' },
  'port-file': { description: 'write the bound port to this file once listening', default: '' },
  'data-dir': { description: 'directory for this service\'s database file', default: './.skein/demo' },
} as const satisfies Record<string, FlagSpec>;

export class UsageError extends Error {}

export function parseFlags(argv: readonly string[], specs: Record<string, FlagSpec>, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const options = Object.fromEntries(Object.keys(specs).map((name) => [name, { type: 'string' as const }]));
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const out: Record<string, string> = {};
  for (const [name, spec] of Object.entries(specs)) {
    const envName = `DEMO_${name.toUpperCase().replace(/-/g, '_')}`;
    out[name] = (values[name] as string | undefined) ?? env[envName] ?? spec.default;
  }
  return out;
}

export function intFlag(flags: Record<string, string>, name: string, min: number, max: number): number {
  const raw = flags[name] ?? '';
  const n = Number(raw);
  if (raw === '' || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return n;
}

export function usage(name: string, specs: Record<string, FlagSpec>): string {
  const lines = Object.entries(specs).map(([flag, s]) => `  --${flag.padEnd(22)} ${s.description}${s.default ? ` (default ${s.default})` : ''}`);
  return `usage: node dist/demo-services/run.js ${name} [flags]\n${lines.join('\n')}\n`;
}
