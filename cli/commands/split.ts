/** `skein split SERVICE SUBSET=WEIGHT ...`: set the weights of a service's catch-all rule. */
import { InvalidArgumentError, type Command } from 'commander';
import type { AdminClient } from '../admin-client.js';
import { ROUTES, type RouteRuleAnswer } from '../answers.js';
import { parseServiceName } from '../flag-values.js';
import { adminClient, formatSplit, notPublished, printJson, writeWarning, runAdmin, withAdminFlags, type AdminFlags } from './admin-common.js';

function parseWeight(value: string, previous: Record<string, number> = {}): Record<string, number> {
  const m = /^([A-Za-z0-9][A-Za-z0-9_.-]*)=(\d{1,3})$/.exec(value);
  if (!m) throw new InvalidArgumentError(`expected SUBSET=WEIGHT (e.g. v2=10), got ${value}`);
  if (Object.hasOwn(previous, m[1]!)) throw new InvalidArgumentError(`subset ${m[1]} given twice`);
  return { ...previous, [m[1]!]: Number(m[2]) };
}

export interface SplitSet {
  readonly routes: RouteRuleAnswer[];
  readonly snapshotVersion: string | null;
  /** False when the control plane stored the split but could not publish it: sidecars keep `snapshotVersion`. */
  readonly published: boolean;
  readonly warning?: string;
}

/**
 * Sets the split; `notice` is told (as `skein apply` tells stderr) of a rollout a forced split
 * aborted, and of a split stored but not published, which sidecars do not route by yet.
 */
export async function setSplit(api: AdminClient, service: string, weights: Record<string, number>, force: boolean, notice: (line: string) => void): Promise<SplitSet> {
  const res = await api.request('PUT', `/api/v1/routes/${encodeURIComponent(service)}/split${force ? '?force=true' : ''}`, { body: weights, expected: ROUTES });
  const aborted = res.headers.get('skein-canary-aborted');
  if (aborted) notice(`aborted the canary rollout of ${aborted} to set the split (--force); see skein canary ${service} --status`);
  const warning = writeWarning(res.headers);
  if (warning !== undefined) notice(`warning: the split of ${service} is ${warning}`);
  return { routes: res.body, snapshotVersion: res.headers.get('skein-snapshot-version'), published: notPublished(res.headers) === undefined, ...(warning !== undefined ? { warning } : {}) };
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
      const set = await setSplit(adminClient(flags), service, weights, flags.force === true, (line) => process.stderr.write(`skein: ${line}\n`));
      if (flags.output === 'json') return printJson({ service, split: weights, ...set });
      const where = set.published ? `snapshot ${set.snapshotVersion}` : `stored, not published: sidecars keep snapshot ${set.snapshotVersion}`;
      process.stdout.write(`${service}: ${formatSplit(weights)} (${where})\n`);
    }),
  );
}
