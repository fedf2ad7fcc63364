import { describe, expect, it } from 'vitest';
import { waitUntil } from '../../test/support/wait.js';
import { childPids } from './proc-stats.js';
import { ChildProcesses, runToCompletion } from './children.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('ChildProcesses', () => {
  it('stops a child and what it forked, even when the child ignores SIGTERM', async () => {
    const children = new ChildProcesses();
    // A shell that ignores SIGTERM and forks two sleepers (as nginx forks workers).
    const child = children.spawn('forker', 'sh', ['-c', "trap '' TERM; sleep 60 & sleep 60 & wait"]);
    const forked = await waitUntil(() => childPids(child.pid).length === 2 && childPids(child.pid), { what: 'the sleepers' });
    await children.stopAll(300);
    expect(child.hasExited).toBe(true);
    await waitUntil(() => forked.every((pid) => !alive(pid)), { timeoutMs: 2000, what: 'the forked sleepers to be gone' });
  });

  it('killAllNow kills synchronously, as an exit handler needs', async () => {
    const children = new ChildProcesses();
    const child = children.spawn('sleeper', 'sleep', ['60']);
    children.killAllNow();
    expect((await child.exited).signal).toBe('SIGKILL');
  });

  it('runToCompletion returns stdout, and fails with the output on a non-zero exit', async () => {
    const children = new ChildProcesses();
    expect(await runToCompletion(children, 'echo', 'sh', ['-c', 'echo out; echo err >&2'])).toBe('out\n');
    await expect(runToCompletion(children, 'failing', 'sh', ['-c', 'echo why >&2; exit 3'])).rejects.toThrow(/failing failed \(exit 3\):\nwhy/);
  });
});
