/** The list of `skein` subcommands, in the order `skein --help` shows them. */
import type { Command } from 'commander';
import { registerSidecar } from './sidecar.js';
import { registerControlPlane } from './control-plane.js';
import { registerInject } from './inject.js';

export function registerCommands(program: Command): void {
  registerSidecar(program);
  registerControlPlane(program);
  registerInject(program);
}
