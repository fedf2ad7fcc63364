import { defineConfig } from 'vitest/config';

// Tests spawn real sidecar and control-plane processes from dist/, so `npm test` builds first.
// Two cores: run files in parallel sparingly, since many tests start several processes each.
export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    reporters: ['default'],
  },
});
