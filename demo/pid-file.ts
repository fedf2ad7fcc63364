/**
 * `demo.pids` in the data dir: one line per process the demo started ("PID NAME"), the
 * orchestrator first. Written as each process starts, so even a demo that was killed with
 * SIGKILL halfway through its start leaves a record the next `skein demo` can clean up.
 */
import { appendFileSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isAlive } from './state.js';
import { signalGroup } from './processes.js';
import { waitFor } from './wait.js';

/** How long processes killed with SIGKILL may take to be gone (and free their ports). */
const EXIT_WAIT_MS = 10_000;

export interface PidEntry {
  readonly pid: number;
  readonly name: string;
}

export class PidFile {
  constructor(readonly path: string) {}

  /** Starts a fresh record with this orchestrator. */
  begin(): void {
    writeFileSync(this.path, `${process.pid} skein-demo\n`, { mode: 0o600 });
  }

  add(pid: number, name: string): void {
    appendFileSync(this.path, `${pid} ${name}\n`);
  }

  /** After a stop that saw every process exit. */
  remove(): void {
    rmSync(this.path, { force: true });
  }

  read(): PidEntry[] {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .map((line) => /^(\d+) (.+)$/.exec(line))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ pid: Number(m[1]), name: m[2]! }));
  }
}

/**
 * Exited: gone, or a zombie whose other threads are gone too. A multi-threaded process's
 * leader turns zombie first; its sockets close only when its last thread exits (a Node
 * process's helper threads take tens of milliseconds to free a large heap), so a zombie
 * with threads left still holds its ports.
 */
function hasExited(pid: number): boolean {
  if (!isAlive(pid)) return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z') && readdirSync(`/proc/${pid}/task`).length <= 1;
  } catch {
    return true;
  }
}

/** Whether a live pid still runs one of our commands (pids get reused). */
function isOurs(pid: number, markers: readonly string[]): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
    return markers.some((m) => cmdline.includes(m));
  } catch {
    return false;
  }
}

export interface Leftovers {
  /** The orchestrator of a demo that still runs on this data dir, if any. */
  readonly runningDemo?: number;
  /** Processes of a demo that died without stopping them, now killed. */
  readonly killed: readonly PidEntry[];
}

/**
 * Looks at the previous demo on this data dir: if its orchestrator still runs, says so;
 * otherwise kills whatever it left behind and waits until it has exited, so that its ports
 * are free for the new demo. Only processes that still run one of its commands are touched
 * (pids get reused): every one names the data dir on its command line, except Consul, whose
 * node name carries the orchestrator's pid.
 */
export async function cleanLeftovers(pidFile: PidFile, dataDir: string): Promise<Leftovers> {
  const [orchestrator, ...children] = pidFile.read();
  if (!orchestrator) return { killed: [] };
  if (orchestrator.pid !== process.pid && isAlive(orchestrator.pid) && isOurs(orchestrator.pid, ['demo'])) {
    return { runningDemo: orchestrator.pid, killed: [] };
  }
  const markers = [dataDir, consulNodeName(orchestrator.pid)];
  const killed = children.filter((c) => isAlive(c.pid) && isOurs(c.pid, markers));
  for (const c of killed) signalGroup(c.pid, 'SIGKILL');
  await waitFor(() => killed.every((c) => hasExited(c.pid)), {
    timeoutMs: EXIT_WAIT_MS,
    what: `the processes left behind by the previous demo to exit (${killed.map((c) => `${c.pid} ${c.name}`).join(', ')})`,
  });
  return { killed };
}

/** Consul's node name in the demo started by this orchestrator. */
export function consulNodeName(orchestratorPid: number): string {
  return `skein-demo-${orchestratorPid}`;
}
