/** The facts a benchmark table must carry to be read later: when, on what, with what versions. */
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';

export interface MachineInfo {
  readonly date: string;
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly kernel: string;
  readonly node: string;
  /** 1-minute load average when the run started: other work on a shared machine shows here. */
  readonly loadAverage: number;
}

export function machineInfo(): MachineInfo {
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: `Linux ${release()}`,
    node: process.version,
    loadAverage: loadavg()[0]!,
  };
}

export function describeMachine(m: MachineInfo): string {
  return `${m.date} on ${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGiB} GiB, ${m.kernel}, Node ${m.node}; 1-min load average at start ${m.loadAverage.toFixed(2)}`;
}
