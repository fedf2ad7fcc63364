import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { REASONS, SkeinError } from './errors.js';

describe('the x-skein-reason catalogue', () => {
  it('is documented in the README, row for row', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    for (const [reason, { grpc, delivered }] of Object.entries(REASONS)) {
      const row = readme.split('\n').find((line) => line.startsWith(`| \`${reason}\` |`));
      expect(row, `README row for ${reason}`).toBeDefined();
      expect(row).toContain(`| ${grpc} `);
      expect(row).toMatch(new RegExp(`\\| ${delivered} \\|$`));
    }
  });

  it('gives each error its status and gRPC code', () => {
    const err = new SkeinError('timeout');
    expect(err.status).toBe(504);
    expect(err.grpcStatus).toBe(4);
    expect(new SkeinError('fault-injected', undefined, 418).status).toBe(418);
  });
});
