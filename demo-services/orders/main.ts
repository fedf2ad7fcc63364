import { runService } from '../shared/service.js';
import { orders } from './service.js';

await runService(orders, process.argv.slice(2));
