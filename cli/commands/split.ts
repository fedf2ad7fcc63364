/** `skein split SERVICE SUBSET=WEIGHT ...`: set the weights of a service's catch-all rule. */
import { InvalidArgumentError, type Command } from 'commander';
import { ROUTES } from '../answers.js';
import { parseServiceName } from '../flag-values.js';
import { adminClient, formatSplit, printJson, runAdmin, withAdminFlags, type AdminFlags } from './admin-common.js';

function parseWeight(value: string, previous: Record<string, number> = {}): Record<string, number> {
  const m = /^([A-Za-z0-9][A-Za-z0-9_.-]*)=(\d{1,3})$/.exec(value);
  if (!m) throw new InvalidArgumentError(`expected SUBSET=WEIGHT (e.g. v2=10), got ${value}`);
  if (m[1]! in previous) throw new InvalidArgumentError(`subset ${m[1]} given twice`);
  return { ...previous, [m[1]!]: Number(m[2]) };
}

export function registerSplit(program: Command): void {
  const command = program
    .command('split')
    .description('set canary weights of a service, e.g. `skein split catalog v1=90 v2=10`')
    .argument('<service>', 'service name', parseServiceName)
    .argument('<weights...>', 'SUBSET=WEIGHT pairs summing to 100', (value: string, previous: Record<string, number> | undefined) => parseWeight(value, previous))
    .option('--force', 'abort a running canary rollout of the service, then set the weights (without it the split of a service with a running rollout is refused)');
  withAdminFlags(command).action((service: string, weights: Record<string, number>, flags: AdminFlags & { force?: boolean }) =>
    runAdmin(async () => {
      const res = await adminClient(flags).request('PUT', `/api/v1/routes/${encodeURIComponent(service)}/split${flags.force ? '?force=true' : ''}`, { body: weights, expected: ROUTES });
      const aborted = res.headers.get('skein-canary-aborted');
      if (aborted) process.stderr.write(`skein: aborted the canary rollout of ${aborted} to set the split (--force); see skein canary ${service} --status\n`);
      if (flags.output === 'json') return printJson({ service, split: weights, snapshotVersion: res.headers.get('skein-snapshot-version'), routes: res.body });
      process.stdout.write(`${service}: ${formatSplit(weights)} (snapshot ${res.headers.get('skein-snapshot-version')})\n`);
    }),
  );
}
