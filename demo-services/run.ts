/**
 * One entry for every demo service: `node dist/demo-services/run.js <service> [flags]`.
 * Each service can also be started as `node dist/demo-services/<service>/main.js [flags]`.
 */
import { runService } from './shared/service.js';
import { DEMO_SERVICES, SERVICES } from './services.js';

const [name, ...rest] = process.argv.slice(2);
const load = name ? SERVICES[name] : undefined;
if (!load) {
  process.stderr.write(`usage: node dist/demo-services/run.js <${DEMO_SERVICES.join('|')}> [flags]  (--help for a service's flags)\n`);
  process.exit(2);
}
await runService(await load(), rest);
