/**
 * What a benchmark scenario is. Each scenario is one file in bench/scenarios/ exporting
 * `scenario`; bench/run.ts finds them there by file name and runs those asked for (all by
 * default) in one process, with one set of children that it stops however the run ends.
 */
import type { ChildProcesses } from './lib/children.js';

export interface BenchOptions {
  /** Seconds of each measured load. */
  readonly durationSeconds: number;
  /** Each measurement is split into this many slices, the targets taking turns (noise hits all alike). */
  readonly rounds: number;
  /** Seconds of load sent to each target before measuring. */
  readonly warmupSeconds: number;
  /** Times each scenario runs; the last run's report is shown with the spread of all runs' figures. */
  readonly repeat: number;
  /** Niceness every child process runs at, when not the default. */
  readonly niceness?: number;
  /** Where to write CPU profiles of the processes under test (e.g. `node --cpu-prof`), when wanted. */
  readonly profileDir?: string;
  /** Targets to run, for scenarios that have several (e.g. `skein`, `nginx`); all when undefined. */
  readonly only?: readonly string[];
}

export interface ScenarioContext {
  readonly options: BenchOptions;
  readonly children: ChildProcesses;
  /** A fresh temp dir for this scenario's files (configs, certificates, logs). */
  readonly workDir: string;
  readonly repoRoot: string;
  log(message: string): void;
}

export interface ScenarioResult {
  /** The markdown block for bench/results/latest.md and the README markers of this scenario. */
  readonly markdown: string;
  /** Headline numbers by label, whose spread over `--repeat` runs is reported. */
  readonly figures?: Readonly<Record<string, number>>;
}

export interface Scenario {
  /** File name and README marker name, e.g. `data-plane` (markers `<!-- bench:data-plane:start -->`). */
  readonly name: string;
  readonly description: string;
  run(context: ScenarioContext): Promise<ScenarioResult>;
}
