/**
 * `skein`: one command, one file per subcommand under cli/commands/. Each file declares its
 * flags here and imports its implementation only when run, so `skein --help` stays fast.
 * Usage errors exit 2 (SPEC §2); a command's own failure exits 1 with a readable message, and
 * a request to try again in a moment (TryAgainError) exits 75.
 */
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { registerCommands } from './commands/index.js';
import { EXIT_TRY_AGAIN, TryAgainError } from './try-again-error.js';
import { UsageError } from './usage-error.js';

export function buildProgram(): Command {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  const program = new Command('skein')
    .description('Skein service mesh: sidecar proxy, control plane and admin CLI')
    .version(pkg.version)
    // `skein sidecar --version v2` is the subset label, not the program's --version.
    .enablePositionalOptions()
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(str) });
  registerCommands(program);
  for (const cmd of program.commands) cmd.exitOverride().showHelpAfterError('(run with --help for usage)');
  program.hook('preAction', () => checkLogLevelEnv(process.env));
  return program;
}

/** pino's levels, spelled here so that `skein --help` need not load pino. */
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** A level pino does not know would otherwise stop a process with pino's stack trace as it makes its logger. */
function checkLogLevelEnv(env: NodeJS.ProcessEnv): void {
  const level = env.SKEIN_LOG_LEVEL;
  if (level !== undefined && !LOG_LEVELS.includes(level)) {
    throw new UsageError(`SKEIN_LOG_LEVEL=${JSON.stringify(level)}: not a log level (${LOG_LEVELS.join(', ')})`);
  }
}

/**
 * A reader that stops early (`skein tap catalog | head -5`) closes the pipe under us; like a
 * Unix tool, exit quietly then instead of crashing on EPIPE at the next write. Exiting here
 * also ends a streaming command (tap, canary), which would otherwise write on forever.
 */
function exitQuietlyWhenPipeCloses(stream: NodeJS.WriteStream): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}

/** The error line: prefixed with `skein: ` once, though some errors (the store's, for one) come with it already. */
export function prefixed(message: string): string {
  return `skein: ${message.replace(/^skein: /, '')}\n`;
}

export async function main(argv: string[]): Promise<void> {
  exitQuietlyWhenPipeCloses(process.stdout);
  exitQuietlyWhenPipeCloses(process.stderr);
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are "errors" to commander; they exit 0.
      process.exit(err.exitCode === 0 ? 0 : 2);
    }
    if (err instanceof UsageError) {
      process.stderr.write(prefixed(err.message));
      process.exit(2);
    }
    if (err instanceof TryAgainError) {
      process.stderr.write(prefixed(err.message));
      process.exit(EXIT_TRY_AGAIN);
    }
    process.stderr.write(prefixed((err as Error).message));
    process.exit(1);
  }
}
