import { runService } from '../shared/service.js';
import { notifications } from './service.js';

await runService(notifications, process.argv.slice(2));
