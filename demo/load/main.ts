/**
 * The demo's load generator as a process of its own (so the orchestrator stops it first, as
 * one unit): `node dist/demo/load/main.js --gateway URL --inventory URL [--rate 10]`.
 * `--demo DIR` names the demo's data dir, so `ps` (and a later demo cleaning up after one
 * that crashed) can tell which demo it belongs to.
 * One summary line per window on stdout; SIGTERM/SIGINT stop it after in-flight requests.
 */
import { parseArgs } from 'node:util';
import { LoadGenerator } from './generator.js';

const { values } = parseArgs({
  options: {
    demo: { type: 'string' },
    gateway: { type: 'string' },
    inventory: { type: 'string' },
    rate: { type: 'string', default: '10' },
    'report-every-ms': { type: 'string', default: '5000' },
  },
});
const rate = Number(values.rate);
const reportEveryMs = Number(values['report-every-ms']);
if (!values.gateway || !values.inventory || !(rate > 0 && rate <= 1000) || !(reportEveryMs >= 100)) {
  process.stderr.write('usage: node dist/demo/load/main.js --gateway URL --inventory URL [--rate 1..1000] [--report-every-ms N]\n');
  process.exit(2);
}

const report = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`);
const load = new LoadGenerator({ gatewayUrl: values.gateway, inventoryUrl: values.inventory, rate, reportEveryMs, report });
report(`load: ${rate} req/s to ${values.gateway} (60% browse, 30% view, 10% order)`);
load.start();

let stopping = false;
const stop = (signal: string) => {
  if (stopping) return;
  stopping = true;
  report(`load: stopping (${signal})`);
  void load.stop().then(() => process.exit(0));
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
