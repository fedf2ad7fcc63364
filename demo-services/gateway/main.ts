import { runService } from '../shared/service.js';
import { gateway } from './service.js';

await runService(gateway, process.argv.slice(2));
