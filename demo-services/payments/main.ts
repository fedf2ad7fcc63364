import { runService } from '../shared/service.js';
import { payments } from './service.js';

await runService(payments, process.argv.slice(2));
