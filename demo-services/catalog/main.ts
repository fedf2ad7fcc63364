import { runService } from '../shared/service.js';
import { catalog } from './service.js';

await runService(catalog, process.argv.slice(2));
