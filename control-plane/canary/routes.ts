/**
 * Admin API routes of automated canary rollouts (SPEC §5): `POST /api/v1/canaries/{service}`
 * starts one, `GET` shows its state and every step's measurements and decision, `DELETE`
 * aborts it and restores `from`=100; `POST …/pause`, `…/resume` and `…/promote` are the
 * operator's hands on a running one (Argo Rollouts' pause and promote).
 */
import { z } from 'zod';
import { ApiError } from '../admin-api/errors.js';
import { booleanParam, queryParam } from '../admin-api/query-param.js';
import type { Router } from '../admin-api/router.js';
import { CanaryConflictError, CanaryNotReadyError, NoCanaryError, SplitNotPublishedError, type CanaryController, type CanaryState } from './controller.js';
import { canaryBody } from './schema.js';

const pauseReason = z.string().max(500, 'must be at most 500 characters');

/** An operator action's refusals: 404 for a service with no rollout, 409 for one it cannot act on now. */
async function operatorAction(action: () => Promise<CanaryState>): Promise<{ body: CanaryState }> {
  try {
    return { body: await action() };
  } catch (err) {
    if (err instanceof NoCanaryError) throw new ApiError('not-found', err.message);
    if (err instanceof CanaryConflictError) throw new ApiError('conflict', err.message);
    throw err;
  }
}

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
        const state = await canaries.latest(params.service!);
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
    })
    .add({
      method: 'POST',
      path: '/api/v1/canaries/{service}/pause',
      summary: 'Pause the running rollout: no step is judged or advanced and its split stays, and it keeps owning its routes and subsets, until resumed, promoted or aborted; the state shows `paused` with when and why; 404 with no rollout, 409 when none runs or it is already paused',
      auth: true,
      query: [{ name: 'reason', description: 'why, shown with the pause (at most 500 characters)' }],
      handler: async ({ params, query }) => operatorAction(() => canaries.pause(params.service!, queryParam(query, 'reason', pauseReason))),
    })
    .add({
      method: 'POST',
      path: '/api/v1/canaries/{service}/resume',
      summary: 'Resume a paused rollout at its step, with a fresh measurement window; 404 with no rollout, 409 when none runs or it is not paused',
      auth: true,
      handler: async ({ params }) => operatorAction(() => canaries.resumePaused(params.service!)),
    })
    .add({
      method: 'POST',
      path: '/api/v1/canaries/{service}/promote',
      summary: 'Move the running rollout (paused or not) to its next step now, skipping the current step\'s analysis, or with ?full=true to 100% `to` at once, which ends it succeeded; recorded in `promotions`; 404 with no rollout, 409 when none runs',
      auth: true,
      query: [{ name: 'full', description: 'true: straight to 100% of `to`, ending the rollout succeeded' }],
      handler: async ({ params, query }) => {
        const full = booleanParam(query, 'full');
        return operatorAction(() => canaries.promote(params.service!, full));
      },
    });
}
