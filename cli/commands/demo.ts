/**
 * `skein demo`: run the demo shop with its mesh on this machine (SPEC §9), and
 * `skein demo scenario NAME` / `skein demo stop` against the one running.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import type { ConsulChoice } from '../../demo/options.js';
import { DEFAULT_OPTIONS } from '../../demo/options.js';
import { UsageError } from '../usage-error.js';
import { parsePort } from './sidecar.js';

function parseConsul(value: string): ConsulChoice {
  if (value === 'auto' || value === 'off') return value;
  if (/^https?:\/\/[^/\s]+\/?$/.test(value)) return { url: value.replace(/\/$/, '') };
  throw new InvalidArgumentError(`expected auto, off or an agent URL like http://127.0.0.1:8500, got ${value}`);
}

function parseRate(value: string): number {
  const rate = Number(value);
  if (!Number.isFinite(rate) || rate <= 0 || rate > 1000) throw new InvalidArgumentError(`not a rate above 0 and at most 1000 requests per second (--no-load runs none): ${value}`);
  return rate;
}

function parseSeconds(value: string): number {
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds < 0 || seconds > 3600) throw new InvalidArgumentError(`not a number of seconds: ${value}`);
  return seconds;
}

const dataDirOption = () => new Option('--data-dir <dir>', 'the demo\'s data (databases, CA, logs, state)').env('SKEIN_DEMO_DATA_DIR').default(DEFAULT_OPTIONS.dataDir);

export function registerDemo(program: Command): void {
  const demo = program
    .command('demo')
    .description('run the demo shop: Consul or the built-in registry, control plane, 7 services each with a sidecar, load')
    .addOption(dataDirOption())
    .addOption(new Option('--gateway-port <port>', 'the shop\'s public HTTP port (0: any free port)').argParser(parsePort).default(DEFAULT_OPTIONS.gatewayPort))
    .addOption(new Option('--control-plane-port <port>', 'control plane admin API and dashboard (0: any free port)').argParser(parsePort).default(DEFAULT_OPTIONS.controlPlanePort))
    .addOption(new Option('--consul <mode>', 'auto (a consul binary if one is installed), off (built-in registry), or an agent URL').argParser(parseConsul).default(DEFAULT_OPTIONS.consul, 'auto'))
    .addOption(new Option('--rate <n>', 'load generator requests per second').argParser(parseRate).default(DEFAULT_OPTIONS.loadRate))
    .option('--no-load', 'start without the load generator')
    .option('--fresh', 'delete the data dir first (new databases, CA and config)', false)
    .action(async (flags: { dataDir: string; gatewayPort: number; controlPlanePort: number; consul: ConsulChoice; rate: number; load: boolean; fresh: boolean }) => {
      const { runDemo } = await import('../../demo/run.js');
      const code = await runDemo({
        dataDir: flags.dataDir,
        gatewayPort: flags.gatewayPort,
        controlPlanePort: flags.controlPlanePort,
        consul: flags.consul,
        loadRate: flags.load ? flags.rate : 0,
        fresh: flags.fresh,
      });
      process.exit(code);
    });

  demo
    .command('scenario')
    .description('run a scenario against the running demo (without NAME: list them)')
    .argument('[name]', 'canary, blue-green, payments-outage, kill-instance or notifications-down')
    .addOption(dataDirOption())
    .addOption(new Option('--hold <seconds>', 'how long to hold each step so it shows on the dashboard').argParser(parseSeconds).default(10))
    .action(async (name: string | undefined, flags: { dataDir: string; hold: number }) => {
      const { listScenarios, runScenario, UnknownScenarioError } = await import('../../demo/scenarios/run.js');
      if (!name) {
        process.stdout.write(`scenarios (npx skein demo scenario NAME):\n${listScenarios()}`);
        return;
      }
      try {
        const failed = await runScenario(name, { dataDir: flags.dataDir, holdMs: flags.hold * 1000, write: (t) => process.stdout.write(t) });
        process.exitCode = failed === 0 ? 0 : 1;
      } catch (err) {
        // Its message lists the scenarios there are.
        if (err instanceof UnknownScenarioError) throw new UsageError(err.message);
        throw err;
      }
    });

  demo
    .command('stop')
    .description('stop the running demo (as Ctrl-C in its terminal does)')
    .addOption(dataDirOption())
    .action(async (flags: { dataDir: string }) => {
      const { stopDemo } = await import('../../demo/stop.js');
      await stopDemo(flags.dataDir, (t) => process.stdout.write(t));
    });
}
