/**
 * `skein check`: the mesh's health in one command, as `linkerd check`: the control plane, its
 * CA, the sidecars and the config, each check ok, a warning or a failure with what to do. Exits
 * 1 when a check failed (an unreachable control plane among them), 0 otherwise, warnings or not.
 */
import type { Command } from 'commander';
import { adminClient, adminTokenFromEnv, printJson, runAdmin, withAdminFlags, type AdminFlags } from './admin-common.js';

export function registerCheck(program: Command): void {
  const command = program.command('check').description('check the health of the mesh: control plane, certificates, proxies, config (exit 1 when a check fails)');
  withAdminFlags(command).action((flags: AdminFlags) =>
    runAdmin(async () => {
      const { runChecks, CONVERGENCE_GRACE_MS } = await import('../check/run.js');
      const { formatJson, formatText, summary } = await import('../check/report.js');
      const results = await runChecks({
        api: adminClient(flags),
        tokenSet: adminTokenFromEnv() !== undefined,
        now: Date.now,
        sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
        graceMs: CONVERGENCE_GRACE_MS,
      });
      if (flags.output === 'json') printJson(formatJson(results));
      else process.stdout.write(formatText(results));
      if (summary(results).failures > 0) process.exitCode = 1;
    }),
  );
}
