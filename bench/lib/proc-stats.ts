/**
 * Memory and CPU of running processes, read from /proc: RSS from `VmRSS` in
 * /proc/<pid>/status, CPU time as utime+stime from /proc/<pid>/stat. A `UsageSampler`
 * samples a set of pids while a load runs and reports the peak RSS and the CPU seconds spent
 * between `start()` and `stop()`.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Clock ticks per second, the unit of utime/stime (almost always 100 on Linux). */
export const CLOCK_TICKS: number = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime+stime in clock ticks from the text of /proc/<pid>/stat. */
export function parseStatCpuTicks(stat: string): number {
  // The command name (field 2) is in parentheses and may contain spaces, so count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the name, field 3 (state) is index 0; utime is field 14, stime field 15.
  const utime = Number(fields[14 - 3]);
  const stime = Number(fields[15 - 3]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`unexpected /proc stat line: ${stat.slice(0, 120)}`);
  return utime + stime;
}

/** VmRSS in bytes from the text of /proc/<pid>/status (0 for a zombie, which has none). */
export function parseStatusRssBytes(status: string): number {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

export function cpuSeconds(pid: number): number {
  return parseStatCpuTicks(readFileSync(`/proc/${pid}/stat`, 'utf8')) / CLOCK_TICKS;
}

export function rssBytes(pid: number): number {
  return parseStatusRssBytes(readFileSync(`/proc/${pid}/status`, 'utf8'));
}

/** Direct children of `pid` (e.g. nginx workers under their master). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export interface Usage {
  readonly peakRssBytes: number;
  readonly cpuSeconds: number;
}

/** Samples the summed RSS of `pids` every `intervalMs` and the CPU time they used from start() to stop(). */
export class UsageSampler {
  private peak = 0;
  private cpuAtStart = 0;
  private timer: NodeJS.Timeout | undefined;
  private failure: Error | undefined;

  constructor(
    private readonly pids: readonly number[],
    private readonly intervalMs = 100,
  ) {}

  start(): void {
    this.cpuAtStart = this.totalCpu();
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
  }

  /** Stops sampling without a result, e.g. when the load failed. */
  cancel(): void {
    clearInterval(this.timer);
  }

  stop(): Usage {
    clearInterval(this.timer);
    this.sample();
    if (this.failure) throw this.failure;
    return { peakRssBytes: this.peak, cpuSeconds: this.totalCpu() - this.cpuAtStart };
  }

  private sample(): void {
    try {
      const rss = this.pids.reduce((sum, pid) => sum + rssBytes(pid), 0);
      this.peak = Math.max(this.peak, rss);
    } catch (err) {
      // A measured process vanished mid-load: report it at stop() rather than crash a timer.
      this.failure ??= new Error(`measuring pids ${this.pids.join(',')}: ${(err as Error).message}`);
    }
  }

  private totalCpu(): number {
    return this.pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  }
}

/** Usage over several measured slices: the highest peak, the CPU time added up. */
export function combineUsage(slices: readonly Usage[]): Usage {
  return { peakRssBytes: Math.max(0, ...slices.map((u) => u.peakRssBytes)), cpuSeconds: slices.reduce((sum, u) => sum + u.cpuSeconds, 0) };
}
