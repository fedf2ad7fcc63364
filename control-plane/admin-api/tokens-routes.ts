/** `POST /api/v1/tokens`: a bootstrap token for one service identity (SPEC §5). */
import { z } from 'zod';
import { validate } from '../../common/config/parse.js';
import { duration, serviceName } from '../../common/config/schema.js';
import type { BootstrapTokens } from '../tokens.js';
import { ApiError } from './errors.js';
import type { Router } from './router.js';

export const tokenRequest = z
  .object({
    service: serviceName,
    ttl: duration
      .default('24h')
      .refine((ms) => ms >= 1000 && ms <= 365 * 24 * 3_600_000, 'must be between 1s and 365 days'),
  })
  .strict();

export const revokeRequest = z.object({ token: z.string().min(1) }).strict();

export interface TokenRouteDeps {
  readonly tokens: BootstrapTokens;
  /** For skein_bootstrap_tokens_total: the admin API is where tokens are issued and revoked. */
  onChange?(action: 'issued' | 'revoked'): void;
}

export function registerTokenRoutes(router: Router, deps: TokenRouteDeps): void {
  router.add({
    method: 'POST',
    path: '/api/v1/tokens',
    summary: 'Issue a bootstrap token for a service identity; answers {token, service, expiresAt}',
    auth: true,
    requestBody: tokenRequest,
    success: 201,
    handler: async (ctx) => {
      const request = validate(tokenRequest, await ctx.body());
      const issued = await deps.tokens.create(request.service, request.ttl);
      deps.onChange?.('issued');
      return { status: 201, body: issued };
    },
  });
  router.add({
    method: 'POST',
    path: '/api/v1/tokens/revoke',
    summary: 'Revoke a bootstrap token (body {token}): no new certificate is issued with it; 204 again if already revoked, 404 if unknown',
    auth: true,
    requestBody: revokeRequest,
    success: 204,
    handler: async (ctx) => {
      const { token } = validate(revokeRequest, await ctx.body());
      const outcome = await deps.tokens.revoke(token);
      if (outcome === 'unknown') throw new ApiError('not-found', 'no such bootstrap token');
      if (outcome === 'revoked') deps.onChange?.('revoked');
      return { status: 204 };
    },
  });
}
