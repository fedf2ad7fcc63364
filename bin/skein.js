#!/usr/bin/env node
// The published entry point: the CLI is compiled to dist/ by `npm run build`.
import('../dist/cli/main.js').then((m) => m.main(process.argv)).catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/cli/main.js')) {
    console.error('skein: not built yet; run `npm run build` first');
    process.exit(1);
  }
  throw err;
});
