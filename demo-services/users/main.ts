import { runService } from '../shared/service.js';
import { users } from './service.js';

await runService(users, process.argv.slice(2));
