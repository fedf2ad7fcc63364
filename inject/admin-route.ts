/**
 * `POST /api/v1/inject` on the control plane's admin API as well (SPEC §5 lists it there):
 * the same AdmissionReview answer as the TLS webhook, for tools and for clusters that reach
 * the control plane through their own TLS termination. It changes no state and reveals only
 * what `skein inject` prints, so it needs no admin token (the API server sends none).
 */
import { z } from 'zod';
import { ApiError } from '../control-plane/admin-api/errors.js';
import type { Router } from '../control-plane/admin-api/router.js';
import { ADMISSION_API_VERSION, AdmissionReviewError, reviewAdmission } from './admission.js';
import type { InjectOptions } from './options.js';
import { INJECT_PATH } from './webhook-server.js';

const admissionReview = z
  .object({
    apiVersion: z.literal(ADMISSION_API_VERSION),
    kind: z.literal('AdmissionReview'),
    request: z.object({ uid: z.string(), operation: z.string(), object: z.record(z.unknown()).optional() }).passthrough(),
  })
  .passthrough();

export function registerInjectRoute(router: Router, options: InjectOptions): void {
  router.add({
    method: 'POST',
    path: INJECT_PATH,
    summary: 'Kubernetes mutating admission webhook: an AdmissionReview v1 in, the review answered with a JSONPatch adding the sidecar',
    auth: false,
    requestBody: admissionReview,
    success: 200,
    handler: async (ctx) => {
      try {
        return { status: 200, body: reviewAdmission(await ctx.body(), options) };
      } catch (err) {
        if (err instanceof AdmissionReviewError) throw new ApiError('bad-request', err.message);
        throw err;
      }
    },
  });
}
