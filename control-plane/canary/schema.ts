/**
 * The body of `POST /api/v1/canaries/{service}`, validated with zod so every 422 names
 * the field. Durations are written as in the config ("30s", "500ms") and parsed here.
 */
import { z } from 'zod';
import { duration, subsetName } from '../../common/config/schema.js';

export const canaryBody = z
  .object({
    from: subsetName.default('v1'),
    to: subsetName,
    steps: z
      .array(z.number().int().min(1).max(100))
      .min(1)
      .default([10, 25, 50, 100])
      .refine((steps) => steps.every((w, i) => i === 0 || w > steps[i - 1]!), 'weights must increase step by step')
      .refine((steps) => steps.at(-1) === 100, 'the last step must be 100'),
    interval: duration.default('30s').refine((ms) => ms >= 500, 'must be at least 500ms'),
    thresholds: z
      .object({
        minSuccessRate: z.number().min(0).max(1).default(0.99),
        maxP99: duration.default('500ms'),
        minRequests: z.number().int().min(0).default(20),
      })
      .strict()
      .default({}),
    /** Intervals a step may wait for `minRequests` before the rollout is rolled back. */
    maxHolds: z.number().int().min(0).max(100).default(3),
  })
  .strict()
  .refine((b) => b.from !== b.to, { message: 'must differ from "from"', path: ['to'] });

export type CanarySpec = z.output<typeof canaryBody>;
