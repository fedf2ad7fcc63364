import { defineConfig } from 'vitest/config';

// Tests spawn real sidecar and control-plane processes from dist/, so `npm test` builds first.
// Two cores: run files in parallel sparingly, since many tests start several processes each.
export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    // Generous limits and up to two retries: end-to-end tests start several real processes on a
    // shared 2-core machine, where a busy neighbour can stall a start-up for tens of seconds.
    // A retried test still has to pass whole; the runner's report names every retry.
    testTimeout: 90_000,
    hookTimeout: 120_000,
    retry: 2,
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    reporters: ['default'],
  },
});
