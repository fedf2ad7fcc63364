/**
 * Admin API routes of automated canary rollouts (SPEC §5): `POST /api/v1/canaries/{service}`
 * starts one, `GET` shows its state and every step's measurements and decision, `DELETE`
 * aborts it and restores `from`=100.
 */
import { ApiError } from '../admin-api/errors.js';
import type { Router } from '../admin-api/router.js';
import { CanaryConflictError, CanaryNotReadyError, SplitNotPublishedError, type CanaryController } from './controller.js';
import { canaryBody } from './schema.js';

export function registerCanaryRoutes(router: Router, canaries: CanaryController): void {
  router
    .add({
      method: 'POST',
      path: '/api/v1/canaries/{service}',
      summary: 'Start an automated rollout from one subset to another: the split moves step by step while the canary meets its success-rate and p99 thresholds, and rolls back when it does not; 409 while one runs, or when `to` has no healthy instance',
      auth: true,
      requestBody: canaryBody,
      success: 201,
      handler: async (ctx) => {
        try {
          return { status: 201, body: await canaries.start(ctx.params.service!, await ctx.body()) };
        } catch (err) {
          if (err instanceof CanaryConflictError) throw new ApiError('conflict', err.message);
          // Valid, but the mesh's current state (no healthy `to` instance) is what must change.
          if (err instanceof CanaryNotReadyError) throw new ApiError('conflict', err.message);
          // The stored config cannot be composed now: the rollout could steer nothing until it can.
          if (err instanceof SplitNotPublishedError) throw new ApiError('unavailable', err.message);
          throw err;
        }
      },
    })
    .add({
      method: 'GET',
      path: '/api/v1/canaries/{service}',
      summary: "The service's latest rollout: status (running, succeeded, rolled-back, aborted), current step and weight, each analysis's measurements and decision",
      auth: false,
      handler: async ({ params }) => {
        const state = canaries.get(params.service!);
        if (!state) throw new ApiError('not-found', `no canary rollout of ${params.service} has been started`);
        return { body: state };
      },
    })
    .add({
      method: 'DELETE',
      path: '/api/v1/canaries/{service}',
      summary: 'Abort the running rollout and set the split back to 100% `from`',
      auth: true,
      handler: async ({ params }) => {
        const state = await canaries.abort(params.service!);
        if (!state) throw new ApiError('conflict', `no canary rollout of ${params.service} is running`);
        return { body: state };
      },
    });
}
