/** The list of `skein` subcommands, in the order `skein --help` shows them. */
import type { Command } from 'commander';
import { registerSidecar } from './sidecar.js';
import { registerControlPlane } from './control-plane.js';
import { registerGet } from './get.js';
import { registerSplit } from './split.js';
import { registerApply } from './apply.js';
import { registerIntention } from './intention.js';
import { registerExplain } from './explain.js';
import { registerToken } from './token.js';
import { registerInject } from './inject.js';
import { registerCa } from './ca.js';
import { registerStat } from './stat.js';
import { registerTap } from './tap.js';
import { registerDemo } from './demo.js';
import { registerCanary } from './canary.js';
import { registerCheck } from './check.js';

export function registerCommands(program: Command): void {
  registerSidecar(program);
  registerControlPlane(program);
  registerGet(program);
  registerSplit(program);
  registerApply(program);
  registerIntention(program);
  registerExplain(program);
  registerToken(program);
  registerInject(program);
  registerCa(program);
  registerStat(program);
  registerTap(program);
  registerCanary(program);
  registerCheck(program);
  registerDemo(program);
}
