/**
 * Every process the demo starts: each in its own process group (so a stop reaches anything
 * it spawned, and a Ctrl-C in the terminal reaches only the orchestrator, which then stops
 * them in order), with stdout and stderr appended to a log file under the data dir.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, openSync, readFileSync } from 'node:fs';

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export class ManagedProcess {
  private exit: Exit | undefined;
  /** Set once this side has asked it to stop, so its exit is no surprise. */
  stopRequested = false;
  readonly exited: Promise<Exit>;

  constructor(
    readonly name: string,
    readonly pid: number,
    readonly logFile: string,
    exited: Promise<Exit>,
  ) {
    this.exited = exited.then((e) => (this.exit = e));
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** SIGTERM to the group, then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs: number): Promise<Exit> {
    if (!this.running) return this.exit!;
    this.stopRequested = true;
    signalGroup(this.pid, 'SIGTERM');
    const timer = setTimeout(() => signalGroup(this.pid, 'SIGKILL'), graceMs);
    const exit = await this.exited;
    clearTimeout(timer);
    // Anything the process left in its group goes with it.
    signalGroup(this.pid, 'SIGKILL');
    return exit;
  }

  /** SIGKILL to the group: the process dies without cleaning up (a crashed instance). */
  async kill(): Promise<Exit> {
    this.stopRequested = true;
    signalGroup(this.pid, 'SIGKILL');
    return this.exited;
  }

  /** The last lines of its log, for error messages. */
  tail(lines = 15): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  describeExit(): string {
    const e = this.exit;
    if (!e) return `${this.name} is running`;
    return `${this.name} exited (${e.signal ?? `code ${e.code}`}); last lines of ${this.logFile}:\n${this.tail()}`;
  }
}

export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

export class ProcessSupervisor {
  private readonly live = new Set<ManagedProcess>();
  private closed = false;

  constructor(private readonly hooks: { onStart?(proc: ManagedProcess): void; onUnexpectedExit?(proc: ManagedProcess): void } = {}) {}

  start(name: string, command: string, args: readonly string[], options: { logFile: string; env?: NodeJS.ProcessEnv; cwd?: string }): ManagedProcess {
    if (this.closed) throw new Error(`not starting ${name}: the demo is stopping`);
    appendFileSync(options.logFile, `--- ${new Date().toISOString()} ${name}: ${[command, ...args].join(' ')}\n`);
    // The child writes to the file itself: no pipe through this process that could fill up or break.
    const fd = openSync(options.logFile, 'a');
    let child;
    try {
      child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', fd, fd], detached: true });
    } finally {
      closeSync(fd);
    }
    const exited = new Promise<Exit>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    if (child.pid === undefined) {
      exited.catch(() => undefined);
      throw new Error(`could not start ${name} (${command})`);
    }
    const proc = new ManagedProcess(name, child.pid, options.logFile, exited);
    this.live.add(proc);
    void proc.exited
      .then(() => {
        this.live.delete(proc);
        if (!proc.stopRequested && !this.closed) this.hooks.onUnexpectedExit?.(proc);
      })
      .catch(() => this.live.delete(proc));
    this.hooks.onStart?.(proc);
    return proc;
  }

  get running(): readonly ManagedProcess[] {
    return [...this.live];
  }

  /** Refuses further starts. */
  close(): void {
    this.closed = true;
  }

  /** Last resort when the orchestrator itself is going down: SIGKILL every group, synchronously. */
  killAllNow(): void {
    for (const proc of this.live) signalGroup(proc.pid, 'SIGKILL');
  }
}
