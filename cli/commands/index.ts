/** The list of `skein` subcommands, in the order `skein --help` shows them. */
import type { Command } from 'commander';
import { registerSidecar } from './sidecar.js';

export function registerCommands(program: Command): void {
  registerSidecar(program);
}
