/**
 * `skein demo` in a terminal: progress while starting, the summary box, then wait. SIGINT,
 * SIGTERM or SIGHUP (or POST /stop on the control endpoint) stops everything in order; a
 * second signal kills every process group at once. Exits 0 after a clean stop, 1 when the
 * start failed.
 */
import { Demo } from './orchestrator.js';
import type { DemoOptions } from './options.js';
import { summaryBox } from './summary.js';

export async function runDemo(
  options: DemoOptions,
  write: (text: string) => void = (t) => process.stdout.write(t),
  writeError: (text: string) => void = (t) => process.stderr.write(t),
): Promise<number> {
  const demo = new Demo(options, {
    step: (text) => write(`  ✓ ${text}\n`),
    notice: (text) => write(`  ! ${text}\n`),
  });
  // Whatever happens to this process, its children do not outlive it.
  process.on('exit', () => demo.killNow());

  let signals = 0;
  let asked = false;
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      asked = true;
      if (++signals > 1) {
        write(`\n${signal} again: killing every process now\n`);
        demo.killNow();
        process.exit(130);
      }
      write(`\n${signal}: stopping the demo (again to kill at once)\n`);
      void demo.stop().then(resolve);
    };
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);
    demo.onStopRequested = () => {
      asked = true;
      write('\nasked to stop (skein demo stop)\n');
      void demo.stop().then(resolve);
    };
  });

  write(`skein demo: the shop (gateway, users, catalog v1+v2, inventory, orders, payments ×2, notifications), each with its own sidecar\n`);
  try {
    await demo.start();
  } catch (err) {
    if (asked) {
      await stopped;
      write('stopped before the demo was up\n');
      return 0;
    }
    writeError(`\nskein demo: could not start: ${(err as Error).message}\n(logs in ${demo.paths.logs})\n`);
    return 1;
  }
  write(`\n${summaryBox(demo.state())}\n`);
  await stopped;
  write(`all ${demo.state().pids.length - 1} processes the demo started have stopped\n`);
  return 0;
}
