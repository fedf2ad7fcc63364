/**
 * The body of `POST /api/v1/canaries/{service}`, validated with zod so every 422 names
 * the field. Durations are written as in the config ("30s", "500ms") and parsed here.
 * Also the rollout state kept in the store (`canaries/{service}`), checked when a starting
 * control plane reads it back.
 */
import { z } from 'zod';
import { formatDuration } from '../../common/config/duration.js';
import { duration, MAX_POLICY_DURATION_MS, serviceName, subsetName } from '../../common/config/schema.js';
import { DURATION_BUCKETS } from '../../common/proto/telemetry.js';

/**
 * The last latency bucket bound (10 s): a p99 past it is estimated at it, so a larger maxP99
 * could never be exceeded and would check nothing while seeming to.
 */
export const MAX_P99_MS = DURATION_BUCKETS.at(-1)! * 1000;

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
    interval: duration
      .default('30s')
      .refine((ms) => ms >= 500, 'must be at least 500ms')
      .refine((ms) => ms <= MAX_POLICY_DURATION_MS, (ms) => ({ message: `must be at most 24h, not ${formatDuration(ms)}` })),
    thresholds: z
      .object({
        minSuccessRate: z.number().min(0).max(1).default(0.99),
        maxP99: duration
          .default('500ms')
          .describe('roll back above this p99 latency: "500ms", "2s" or a number of milliseconds, at most 10s (the last latency bucket); 0 turns the latency check off')
          .refine((ms) => ms <= MAX_P99_MS, (ms) => ({ message: `must be at most ${formatDuration(MAX_P99_MS)} (the last latency bucket: a p99 past it is not measured), not ${formatDuration(ms)}; 0 turns the latency check off` })),
        // A step judged on no request would advance a canary nothing was measured of.
        minRequests: z.number().int().min(1, 'must be at least 1: a step with no request to the canary proves nothing about it').default(20),
      })
      .strict()
      .default({}),
    /** Intervals a step may wait for `minRequests` before the rollout is rolled back. */
    maxHolds: z.number().int().min(0).max(100).default(3),
  })
  .strict()
  .refine((b) => b.from !== b.to, { message: 'must differ from "from"', path: ['to'] });

export type CanarySpec = z.output<typeof canaryBody>;

const timestamp = z.string().datetime();
const weight = z.number().min(0).max(100);

const storedAnalysis = z
  .object({
    step: z.number().int().min(0),
    weight,
    windowStart: timestamp,
    analyzedAt: timestamp,
    measured: z
      .object({
        requests: z.number().int().min(0),
        successRate: z.number().min(0).max(1).nullable(),
        p99Ms: z.number().min(0).nullable(),
      })
      .strict(),
    decision: z.enum(['advance', 'hold', 'rollback']),
    reason: z.string().optional(),
  })
  .strict();

/**
 * A spec stored by an older version, as it behaved there, so a rollout running with it resumes
 * instead of refusing the start: `minRequests: 0` was taken and judged as 1; a `maxP99` past
 * the last bucket was taken and could never be exceeded (the p99 estimate stops at that bound),
 * which is what 0 now says.
 */
function olderSpec(spec: unknown): unknown {
  const thresholds = (spec as { thresholds?: { minRequests?: unknown; maxP99?: unknown } } | null)?.thresholds;
  if (!thresholds) return spec;
  const { minRequests, maxP99 } = thresholds;
  return {
    ...(spec as object),
    thresholds: { ...thresholds, ...(minRequests === 0 ? { minRequests: 1 } : {}), ...(typeof maxP99 === 'number' && maxP99 > MAX_P99_MS ? { maxP99: 0 } : {}) },
  };
}

/** An operator's pause of a running rollout: when, and why if they said. */
const storedPause = z.object({ at: timestamp, reason: z.string().optional() }).strict();

/** A step an operator moved past by hand, its analysis skipped; `full`: straight to 100%. */
const storedPromotion = z.object({ at: timestamp, step: z.number().int().min(0), weight, full: z.boolean() }).strict();

/** A rollout's state as the controller stores it; `spec` is the parsed body (durations in ms), which the body's schema takes back unchanged. */
export const storedCanary = z
  .object({
    service: serviceName,
    spec: z.preprocess(olderSpec, canaryBody),
    status: z.enum(['running', 'succeeded', 'rolled-back', 'aborted']),
    step: z.number().int().min(0),
    weight,
    startedAt: timestamp,
    stepStartedAt: timestamp,
    updatedAt: timestamp,
    endedAt: timestamp.optional(),
    reason: z.string().optional(),
    /** Present while a running rollout is paused: no step is judged or advanced until it is resumed or promoted. */
    paused: storedPause.optional(),
    promotions: z.array(storedPromotion).optional(),
    analyses: z.array(storedAnalysis),
  })
  .strict()
  .refine((state) => state.step < state.spec.steps.length, { message: 'is past the last of spec.steps', path: ['step'] });
