/**
 * `skein canary SERVICE --to SUBSET ...`: starts an automated rollout and follows it, one
 * line per analysis, until it ends (exit 0 when it reaches 100%, 1 when rolled back or
 * aborted); `--detach` only starts it, `--status` shows it, `--abort` stops it, `--pause`,
 * `--resume` and `--promote [--full]` steer a running one by hand. A control
 * plane that does not answer for a while (a restart) is waited for, not taken as an end.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CanaryAnalysis, CanaryState } from '../../control-plane/canary/controller.js';
import { canaryBody } from '../../control-plane/canary/schema.js';
import { CANARY } from '../answers.js';
import { checkFlagValues, parseDurationFlag, parseServiceName } from '../flag-values.js';
import { UsageError } from '../usage-error.js';
import { AdminApiError, type AdminClient, type AdminResponse } from '../admin-client.js';
import { adminClient, printJson, runAdmin, withAdminFlags, type AdminFlags } from './admin-common.js';

type CanaryFlags = AdminFlags & {
  to?: string;
  from?: string;
  steps?: number[];
  interval?: number;
  minSuccessRate?: number;
  maxP99?: number;
  minRequests?: number;
  detach?: boolean;
  status?: boolean;
  abort?: boolean;
  pause?: boolean;
  reason?: string;
  resume?: boolean;
  promote?: boolean;
  full?: boolean;
};

/** The flags that act on a running rollout by hand, none with another. */
const OPERATOR_ACTIONS = ['pause', 'resume', 'promote'];

const POLL_MS = 500;
/**
 * How long following outlasts a control plane that does not answer (a restart, a rollout of
 * its own): the rollout goes on meanwhile, and its state is in the store.
 */
const OUTAGE_GRACE_MS = 120_000;

/** The flag that sets each field of the request body, for usage errors. */
const CANARY_FLAGS = {
  to: '--to',
  from: '--from',
  steps: '--steps',
  interval: '--interval',
  'thresholds.minSuccessRate': '--min-success-rate',
  'thresholds.maxP99': '--max-p99',
  'thresholds.minRequests': '--min-requests',
};

function parseSteps(value: string): number[] {
  const steps = value.split(',').map((s) => Number(s.trim()));
  if (steps.some((w) => !Number.isInteger(w) || w < 1 || w > 100)) throw new InvalidArgumentError(`expected weights 1..100 separated by commas (e.g. 10,25,50,100), got ${value}`);
  return steps;
}

function parseNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`expected a number, got ${value}`);
  return n;
}

function percent(rate: number | null): string {
  return rate === null ? '-' : `${(rate * 100).toFixed(2)}%`;
}

function analysisLine(a: CanaryAnalysis): string {
  const m = a.measured;
  const p99 = m.p99Ms === null ? '-' : `${m.p99Ms}ms`;
  return `step ${a.step + 1} ${String(a.weight).padStart(3)}%: ${m.requests} requests, success ${percent(m.successRate)}, p99 ${p99} → ${a.decision}${a.reason ? ` (${a.reason})` : ''}\n`;
}

function summary(s: CanaryState): string {
  const head = `${s.service}: ${s.spec.from} → ${s.spec.to} ${s.status}`;
  if (s.paused) return `${s.service}: ${s.spec.from} → ${s.spec.to} paused at step ${s.step + 1}/${s.spec.steps.length} (${s.weight}% ${s.spec.to}) since ${s.paused.at}${s.paused.reason ? `: ${s.paused.reason}` : ''}\n`;
  if (s.status === 'running') return `${head} at step ${s.step + 1}/${s.spec.steps.length} (${s.weight}% ${s.spec.to})\n`;
  return `${head}${s.reason ? `: ${s.reason}` : ''}\n`;
}

/**
 * The GET shows only the service's latest rollout: once this one ended (aborted, most likely)
 * and another started between two polls, what it shows is that other one's, not this one's.
 */
class ReplacedRolloutError extends Error {
  override name = 'ReplacedRolloutError';

  constructor(started: CanaryState, latest: CanaryState) {
    super(
      `the canary rollout of ${started.service} started at ${started.startedAt} ended unseen, most likely aborted, and was replaced by ` +
        `another (${latest.spec.from} → ${latest.spec.to}, started at ${latest.startedAt}, ${latest.status}); its own result is not known`,
    );
  }
}

/** Prints analyses as they appear (with -o json, only the final state) until the rollout ends; throws (exit 1) unless it succeeded. */
async function follow(flags: CanaryFlags, service: string, started: CanaryState): Promise<void> {
  const client = adminClient(flags);
  let printed = 0;
  const json = flags.output === 'json';
  let state = started;
  let lostSince = 0;
  let pausedAt = started.paused?.at;
  for (;;) {
    if (!json) for (const a of state.analyses.slice(printed)) process.stdout.write(analysisLine(a));
    printed = state.analyses.length;
    // Paused or resumed by hand meanwhile: said once, or a paused rollout's follower would seem stuck.
    if (!json && state.status === 'running' && state.paused?.at !== pausedAt) process.stdout.write(summary(state));
    pausedAt = state.paused?.at;
    if (state.status !== 'running') break;
    await sleep(POLL_MS);
    try {
      state = (await client.get(`/api/v1/canaries/${encodeURIComponent(service)}`, CANARY)).body;
    } catch (err) {
      if (!answersLater(err)) throw err;
      if (lostSince === 0) {
        lostSince = Date.now();
        process.stderr.write(`(${err.message}; still following for up to ${OUTAGE_GRACE_MS / 1000}s)\n`);
      } else if (Date.now() - lostSince > OUTAGE_GRACE_MS) {
        throw new Error(`the control plane did not answer for ${OUTAGE_GRACE_MS / 1000}s while following the canary rollout of ${service} (${err.message}); its result is not known: skein canary ${service} --status`);
      }
      continue;
    }
    if (lostSince !== 0) {
      lostSince = 0;
      process.stderr.write('(the control plane answers again)\n');
    }
    // A rollout is known by when it started: one service has one rollout running at a time.
    if (state.startedAt !== started.startedAt) throw new ReplacedRolloutError(started, state);
  }
  if (json) printJson(state);
  else process.stdout.write(summary(state));
  if (state.status !== 'succeeded') throw new Error(`canary of ${service} ${state.status}${state.reason ? `: ${state.reason}` : ''}`);
}

/** A failure of the control plane's (down, restarting, overloaded), not of the request. */
function answersLater(err: unknown): err is AdminApiError {
  return err instanceof AdminApiError && (err.code === 'unreachable' || err.code === 'timeout' || err.status >= 500);
}

/** The request of --status, --abort, --pause, --resume or --promote; undefined for a start. */
function rolloutRequest(flags: CanaryFlags, client: AdminClient, path: string): Promise<AdminResponse<CanaryState>> | undefined {
  if (flags.status) return client.get(path, CANARY);
  if (flags.abort) return client.delete(path, CANARY);
  if (flags.pause) return client.post(`${path}/pause${flags.reason ? `?reason=${encodeURIComponent(flags.reason)}` : ''}`, undefined, CANARY);
  if (flags.resume) return client.post(`${path}/resume`, undefined, CANARY);
  if (flags.promote) return client.post(`${path}/promote${flags.full ? '?full=true' : ''}`, undefined, CANARY);
  return undefined;
}

export function registerCanary(program: Command): void {
  const command = program
    .command('canary')
    .description('automated progressive rollout with rollback on metric thresholds, e.g. `skein canary catalog --to v2`')
    .argument('<service>', 'service name', parseServiceName)
    .addOption(new Option('--to <subset>', 'the subset to roll out'))
    .addOption(new Option('--from <subset>', 'the subset it replaces (default v1)'))
    .addOption(new Option('--steps <weights>', 'canary weights in turn, increasing, ending at 100 (default 10,25,50,100)').argParser(parseSteps))
    .addOption(new Option('--interval <duration>', 'time at each step before judging it, at least 500ms (default 30s)').argParser(parseDurationFlag))
    .addOption(new Option('--min-success-rate <rate>', 'roll back below this success rate, 0..1 (default 0.99)').argParser(parseNumber))
    .addOption(new Option('--max-p99 <duration>', 'roll back above this p99 latency, at most 10s; 0 turns the latency check off (default 500ms)').argParser(parseDurationFlag))
    .addOption(new Option('--min-requests <n>', 'requests a step needs to be judged (default 20)').argParser(parseNumber))
    .addOption(new Option('--detach', 'start it and return'))
    .addOption(new Option('--status', "show the service's rollout").conflicts(['abort', 'to', 'detach', ...OPERATOR_ACTIONS]))
    .addOption(new Option('--abort', 'stop the running rollout and restore 100% --from').conflicts(['to', 'detach', ...OPERATOR_ACTIONS]))
    .addOption(new Option('--pause', 'pause the running rollout: its split stays and no step is judged until --resume or --promote').conflicts(['to', 'detach', 'resume', 'promote']))
    .addOption(new Option('--reason <text>', 'with --pause: why, shown with the pause'))
    .addOption(new Option('--resume', 'resume a paused rollout at its step, with a fresh measurement window').conflicts(['to', 'detach', 'promote']))
    .addOption(new Option('--promote', "move the running rollout to its next step now, skipping the step's analysis").conflicts(['to', 'detach']))
    .addOption(new Option('--full', 'with --promote: straight to 100% --to, ending the rollout succeeded'));
  withAdminFlags(command).action((service: string, flags: CanaryFlags) =>
    runAdmin(async () => {
      const client = adminClient(flags);
      const path = `/api/v1/canaries/${encodeURIComponent(service)}`;
      if (flags.reason !== undefined && !flags.pause) throw new UsageError('--reason goes with --pause');
      if (flags.full && !flags.promote) throw new UsageError('--full goes with --promote');
      const onRollout = rolloutRequest(flags, client, path);
      if (onRollout) {
        const state = (await onRollout).body;
        if (flags.output === 'json') return printJson(state);
        for (const a of state.analyses) process.stdout.write(analysisLine(a));
        process.stdout.write(summary(state));
        return;
      }
      if (!flags.to) throw new UsageError('give the subset to roll out with --to SUBSET (or --status / --abort / --pause / --resume / --promote)');
      const thresholds = {
        ...(flags.minSuccessRate !== undefined ? { minSuccessRate: flags.minSuccessRate } : {}),
        ...(flags.maxP99 !== undefined ? { maxP99: flags.maxP99 } : {}),
        ...(flags.minRequests !== undefined ? { minRequests: flags.minRequests } : {}),
      };
      const body = {
        to: flags.to,
        ...(flags.from ? { from: flags.from } : {}),
        ...(flags.steps ? { steps: flags.steps } : {}),
        ...(flags.interval !== undefined ? { interval: flags.interval } : {}),
        ...(Object.keys(thresholds).length > 0 ? { thresholds } : {}),
      };
      checkFlagValues(canaryBody, body, CANARY_FLAGS);
      const started = (await client.post(path, body, CANARY)).body;
      if (flags.detach) return flags.output === 'json' ? printJson(started) : void process.stdout.write(summary(started));
      if (flags.output !== 'json') process.stdout.write(`${service}: rolling out ${started.spec.to} over ${started.spec.from} in steps ${started.spec.steps.join(', ')}% every ${started.spec.interval / 1000}s\n`);
      await follow(flags, service, started);
    }),
  );
}
