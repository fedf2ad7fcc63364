/**
 * Owns every process a benchmark starts. Each child runs in its own process group, so
 * stopping it also stops what it forked (nginx workers outlive a killed master otherwise).
 * `killAllNow` is synchronous for process exit handlers; `stopAll` lets children shut down
 * cleanly first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly process: ChildProcess;
  /** stdout and stderr so far (the last 64 KiB), for error messages. */
  output(): string;
  /** stdout alone (the last 64 KiB), for tools whose report is on stdout. */
  stdout(): string;
  readonly exited: Promise<Exit>;
  readonly hasExited: boolean;
}

export interface SpawnOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Also hand stdout lines to this callback (e.g. to read a port a child prints). */
  readonly onStdoutLine?: (line: string) => void;
}

const OUTPUT_LIMIT = 64 * 1024;

export class ChildProcesses {
  private readonly children = new Set<Child>();
  /** Set once the run stops its children; an exit before that is a crash worth its output. */
  private stopping = false;

  /**
   * `niceness` (-20..19) runs every child under `nice -n`, e.g. -10 so that a benchmark on a
   * machine busy with other work is scheduled ahead of it (root only for negative values).
   * Set at exec, so what a child forks (nginx workers) inherits it. Each child is its own
   * session, and with the kernel's autogroup scheduling sessions share the CPU as groups
   * whatever their processes' nice values, so the child's autogroup gets the niceness too.
   */
  constructor(private readonly niceness?: number) {}

  spawn(name: string, command: string, args: readonly string[], options: SpawnOptions = {}): Child {
    const [cmd, argv] = this.niceness === undefined ? [command, args] : ['nice', ['-n', String(this.niceness), command, ...args]];
    const proc = spawn(cmd, argv, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    if (this.niceness !== undefined && proc.pid !== undefined) setAutogroupNice(proc.pid, this.niceness);
    let output = '';
    let stdout = '';
    let partialLine = '';
    const keep = (d: string): void => {
      output = (output + d).slice(-OUTPUT_LIMIT);
    };
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      keep(d);
      stdout = (stdout + d).slice(-OUTPUT_LIMIT);
      if (!options.onStdoutLine) return;
      const lines = (partialLine + d).split('\n');
      partialLine = lines.pop()!;
      for (const line of lines) options.onStdoutLine(line);
    });
    proc.stderr!.setEncoding('utf8').on('data', keep);
    let hasExited = false;
    const exited = new Promise<Exit>((resolve) => {
      proc.once('exit', (code, signal) => {
        hasExited = true;
        if (!this.stopping && (signal !== null || code !== 0)) process.stderr.write(`bench: ${name} exited (${signal ?? `exit ${code}`}) during the run; its last output:\n${output.slice(-4096)}\n`);
        resolve({ code, signal });
      });
      proc.once('error', (err) => {
        keep(`spawn failed: ${err.message}\n`);
        hasExited = true;
        resolve({ code: null, signal: null });
      });
    });
    const child: Child = {
      name,
      pid: proc.pid ?? -1,
      process: proc,
      output: () => output,
      stdout: () => stdout,
      exited,
      get hasExited() {
        return hasExited;
      },
    };
    this.children.add(child);
    void exited.then(() => this.children.delete(child));
    return child;
  }

  /** SIGTERM to each group, then SIGKILL to whatever is left after `graceMs`. */
  async stopAll(graceMs = 3000): Promise<void> {
    this.stopping = true;
    const running = [...this.children];
    for (const child of running) signalGroup(child, 'SIGTERM');
    const timer = setTimeout(() => this.killAllNow(), graceMs);
    await Promise.all(running.map((c) => c.exited));
    clearTimeout(timer);
  }

  /** SIGKILL to every group still running; safe to call from a process 'exit' handler. */
  killAllNow(): void {
    this.stopping = true;
    for (const child of this.children) signalGroup(child, 'SIGKILL');
  }
}

function setAutogroupNice(pid: number, niceness: number): void {
  try {
    writeFileSync(`/proc/${pid}/autogroup`, String(niceness));
  } catch {
    // No autogroup scheduling on this kernel (then `nice` alone does it), or not allowed.
  }
}

function signalGroup(child: Child, signal: NodeJS.Signals): void {
  if (child.pid <= 0) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

/** Runs a command to completion and returns its stdout; rejects with its output on a non-zero exit. */
export async function runToCompletion(children: ChildProcesses, name: string, command: string, args: readonly string[], options: SpawnOptions = {}): Promise<string> {
  const child = children.spawn(name, command, args, options);
  const exit = await child.exited;
  if (exit.code !== 0) throw new Error(`${name} failed (${exit.signal ?? `exit ${exit.code}`}):\n${child.output()}`);
  return child.stdout();
}

/** dist/bench/lib or bench/lib → the repository root. */
const repoRoot = join(fileURLToPath(new URL('.', import.meta.url)), fileURLToPath(import.meta.url).endsWith('.ts') ? '../..' : '../../..');

/**
 * The compiled .js of a bench module, to run as a child process: the module itself when it is
 * already running from dist/, else its twin under dist/ (when vitest runs the TypeScript source;
 * build first with `npx tsc -p .`).
 */
export function compiledScript(moduleUrl: string): string {
  const path = fileURLToPath(moduleUrl);
  if (!path.endsWith('.ts')) return path;
  return join(repoRoot, 'dist', relative(repoRoot, path)).replace(/\.ts$/, '.js');
}
