/** Where the installed package is, so the demo can start its own commands whether run from source or dist/. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const packageRoot: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('package.json not found above demo/');
    dir = parent;
  }
  return dir;
})();

export const skeinBin = join(packageRoot, 'bin', 'skein.js');
export const serviceRunner = join(packageRoot, 'dist', 'demo-services', 'run.js');
export const loadGeneratorMain = join(packageRoot, 'dist', 'demo', 'load', 'main.js');
