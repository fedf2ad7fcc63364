/**
 * `npm run bench [-- [SCENARIO...] [--duration S] [--rounds N] [--repeat N] [--warmup S] [--only a,b] [--write-readme]]`
 *
 * Runs the benchmark scenarios named (default: every file in bench/scenarios/), prints each
 * one's markdown report, writes them all to bench/results/latest.md, and with --write-readme
 * replaces each scenario's block between `<!-- bench:<name>:start/end -->` in README.md.
 * `--repeat N` runs each scenario N times and adds the spread of its headline figures;
 * `--profile` writes CPU profiles of the processes under test to bench/results/profiles/;
 * `--nice=-10` runs every child process under `nice` (on a machine busy with other work).
 * Environment overrides: BENCH_DURATION, BENCH_ROUNDS, BENCH_REPEAT, BENCH_WARMUP, BENCH_ONLY, BENCH_NICE. Every child process is
 * stopped however the run ends (error, Ctrl-C, SIGTERM).
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ChildProcesses } from './lib/children.js';
import { markers, replaceBetweenMarkers } from './lib/markdown.js';
import { describeSpread } from './lib/spread.js';
import type { BenchOptions, Scenario, ScenarioResult } from './scenario.js';

const here = dirname(fileURLToPath(import.meta.url));
/** dist/bench → the repository root. */
const repoRoot = join(here, '..', '..');

const USAGE = `usage: npm run bench -- [SCENARIO...] [--duration S] [--rounds N] [--repeat N] [--warmup S] [--only TARGET[,TARGET]] [--nice=N] [--profile] [--write-readme] [--list]`;

class UsageError extends Error {}

function positiveNumber(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag}: expected a positive number of seconds, got ${JSON.stringify(value)}`);
  return n;
}

async function loadScenarios(): Promise<Map<string, Scenario>> {
  const dir = join(here, 'scenarios');
  const files = readdirSync(dir).filter((f) => f.endsWith('.js') && !f.endsWith('.test.js')).sort();
  const scenarios = new Map<string, Scenario>();
  for (const file of files) {
    const mod = (await import(join(dir, file))) as { scenario?: Scenario };
    if (mod.scenario) scenarios.set(mod.scenario.name, mod.scenario);
  }
  return scenarios;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      rounds: { type: 'string' },
      repeat: { type: 'string' },
      nice: { type: 'string' },
      profile: { type: 'boolean', default: false },
      only: { type: 'string' },
      'write-readme': { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const available = await loadScenarios();
  if (values.help) return void console.log(`${USAGE}\nscenarios: ${[...available.keys()].join(', ')}`);
  if (values.list) {
    for (const s of available.values()) console.log(`${s.name}\t${s.description}`);
    return;
  }
  const unknown = positionals.filter((name) => !available.has(name));
  if (unknown.length > 0) throw new UsageError(`unknown scenario ${unknown.join(', ')} (available: ${[...available.keys()].join(', ')})`);
  const chosen = positionals.length > 0 ? positionals.map((name) => available.get(name)!) : [...available.values()];
  const readmePath = join(repoRoot, 'README.md');
  if (values['write-readme']) {
    // Fail before minutes of measuring, not after.
    const readme = readFileSync(readmePath, 'utf8');
    for (const scenario of chosen) {
      const { start, end } = markers(scenario.name);
      if (!readme.includes(start) || !readme.includes(end)) throw new UsageError(`--write-readme: README.md has no ${start} … ${end} block for ${scenario.name}`);
    }
  }
  const only = (values.only ?? process.env.BENCH_ONLY)?.split(',').map((s) => s.trim()).filter(Boolean);
  const niceText = values.nice ?? process.env.BENCH_NICE;
  const niceness = niceText === undefined || niceText === '' ? undefined : Number(niceText);
  if (niceness !== undefined && !(Number.isInteger(niceness) && niceness >= -20 && niceness <= 19)) {
    throw new UsageError(`--nice: expected an integer from -20 to 19, got ${JSON.stringify(niceText)}`);
  }
  const options: BenchOptions = {
    durationSeconds: positiveNumber('--duration', values.duration ?? process.env.BENCH_DURATION, 12),
    rounds: Math.round(positiveNumber('--rounds', values.rounds ?? process.env.BENCH_ROUNDS, 3)),
    repeat: Math.round(positiveNumber('--repeat', values.repeat ?? process.env.BENCH_REPEAT, 1)),
    warmupSeconds: positiveNumber('--warmup', values.warmup ?? process.env.BENCH_WARMUP, 3),
    only,
    niceness,
    profileDir: values.profile ? join(repoRoot, 'bench', 'results', 'profiles') : undefined,
  };

  const children = new ChildProcesses(niceness);
  const workDirs = new Set<string>();
  const stopNow = (): void => {
    children.killAllNow();
    for (const dir of workDirs) rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', stopNow);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      console.error(`\nbench: ${signal}, stopping children`);
      stopNow();
      process.exit(130);
    });
  }

  const reports: { scenario: Scenario; markdown: string }[] = [];
  try {
    for (const scenario of chosen) {
      const results: ScenarioResult[] = [];
      for (let run = 1; run <= options.repeat; run++) {
        const workDir = mkdtempSync(join(tmpdir(), `skein-bench-${scenario.name}-`));
        workDirs.add(workDir);
        const prefix = options.repeat > 1 ? `[${scenario.name} ${run}/${options.repeat}]` : `[${scenario.name}]`;
        const log = (message: string): void => console.error(`${prefix} ${message}`);
        try {
          results.push(await scenario.run({ options, children, workDir, repoRoot, log }));
        } finally {
          await children.stopAll();
          rmSync(workDir, { recursive: true, force: true });
          workDirs.delete(workDir);
        }
      }
      const last = results[results.length - 1]!.markdown;
      const markdown = results.length > 1 ? `${last}\n\n${describeSpread(results.map((r) => r.figures ?? {}))}` : last;
      reports.push({ scenario, markdown });
      console.log(`\n## ${scenario.name}\n\n${markdown}\n`);
    }
  } finally {
    await children.stopAll();
  }

  const resultsDir = join(repoRoot, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const latest = join(resultsDir, 'latest.md');
  writeFileSync(latest, `${reports.map((r) => `## ${r.scenario.name}\n\n${r.markdown}\n`).join('\n')}`);
  console.error(`bench: wrote ${latest}`);
  if (values['write-readme']) {
    let text = readFileSync(readmePath, 'utf8');
    for (const r of reports) text = replaceBetweenMarkers(text, r.scenario.name, r.markdown);
    writeFileSync(readmePath, text);
    console.error(`bench: updated ${reports.map((r) => r.scenario.name).join(', ')} in ${readmePath}`);
  }
}

main().catch((err: unknown) => {
  console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
  if (!(err instanceof UsageError) && err instanceof Error && err.stack && process.env.BENCH_DEBUG) console.error(err.stack);
  if (err instanceof UsageError) console.error(USAGE);
  process.exit(err instanceof UsageError ? 2 : 1);
});
