import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { waitUntil } from '../../test/support/wait.js';
import { ChildProcesses } from './children.js';
import { childPids, combineUsage, cpuSeconds, parseStatCpuTicks, parseStatusRssBytes, rssBytes, UsageSampler } from './proc-stats.js';

describe('parsing /proc', () => {
  it('reads utime+stime even when the command name has spaces and parentheses', () => {
    const stat = '4242 (node (vitest 1)) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 75 0 0 20 0 11 0 900 1000000 5000 18446744073709551615';
    expect(parseStatCpuTicks(stat)).toBe(325);
  });

  it('reads VmRSS in bytes, and 0 for a process without one', () => {
    expect(parseStatusRssBytes('Name:\tnginx\nVmRSS:\t   10240 kB\nThreads:\t1\n')).toBe(10240 * 1024);
    expect(parseStatusRssBytes('Name:\tzombie\nState:\tZ (zombie)\n')).toBe(0);
  });
});

describe('live processes', () => {
  const children = new ChildProcesses();
  afterEach(() => children.stopAll());

  it('reads the CPU time of a process as node itself counts it', () => {
    // Busy until node's own counter says 200 ms of CPU were spent, however loaded the machine is.
    const start = process.cpuUsage();
    const before = cpuSeconds(process.pid);
    let x = 0;
    const spent = (): number => {
      const u = process.cpuUsage(start);
      return (u.user + u.system) / 1e6;
    };
    while (spent() < 0.2) x += Math.sqrt(x + 1);
    const measured = cpuSeconds(process.pid) - before;
    expect(x).toBeGreaterThan(0);
    // Clock ticks are 10 ms, and other threads of this process (GC) may add a little.
    expect(measured).toBeGreaterThan(0.17);
    expect(measured).toBeLessThan(spent() + 0.1);
    expect(rssBytes(process.pid)).toBeGreaterThan(10 * 2 ** 20);
  });

  it('samples the peak RSS and the CPU a busy child spends while it is measured', async () => {
    // The child allocates 64 MiB and spins until it has used 400 ms of CPU, then idles.
    const child = children.spawn('hog', process.execPath, [
      '-e',
      'const b = Buffer.alloc(64 * 2 ** 20, 1); const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e3; }; while (cpu() < 400) b[Math.floor(Math.random() * b.length)]++; console.log("done"); setInterval(() => {}, 1000);',
    ]);
    const sampler = new UsageSampler([child.pid], 20);
    sampler.start();
    await waitUntil(() => child.stdout().includes('done'), { timeoutMs: 20_000, what: 'the hog to finish' });
    const usage = sampler.stop();
    expect(usage.peakRssBytes).toBeGreaterThan(64 * 2 ** 20);
    expect(usage.cpuSeconds).toBeGreaterThan(0.3);
  });

  it('lists the direct children of a process (nginx workers under their master)', async () => {
    const parent = spawn('sh', ['-c', 'sleep 30 & sleep 30 & wait'], { stdio: 'ignore' });
    try {
      const kids = await waitUntil(() => childPids(parent.pid!).length === 2 && childPids(parent.pid!), { what: 'two children' });
      expect(kids).toHaveLength(2);
    } finally {
      parent.kill('SIGKILL');
    }
  });

  it('combines slices: the highest peak, the sum of CPU', () => {
    expect(combineUsage([
      { peakRssBytes: 10, cpuSeconds: 1 },
      { peakRssBytes: 30, cpuSeconds: 0.5 },
    ])).toEqual({ peakRssBytes: 30, cpuSeconds: 1.5 });
  });
});
