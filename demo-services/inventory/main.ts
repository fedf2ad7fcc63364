import { runService } from '../shared/service.js';
import { inventory } from './service.js';

await runService(inventory, process.argv.slice(2));
