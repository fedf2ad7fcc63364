/**
 * `GET /api/v1/openapi.json` and `GET /healthz`. The OpenAPI document is generated from
 * the router's table at request time (request bodies from the same zod schemas the
 * handlers validate with), so routes registered later by other capabilities appear too.
 */
import { zodToJsonSchema } from 'zod-to-json-schema';
import { API_ERRORS } from './errors.js';
import type { RouteSpec, Router } from './router.js';

const errorSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', enum: Object.keys(API_ERRORS) },
        message: { type: 'string' },
        problems: { type: 'array', items: { type: 'string' }, description: 'for 422: one line per problem, starting with the field path' },
      },
    },
  },
};

function operation(spec: RouteSpec): Record<string, unknown> {
  const params = [...spec.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
  const query = (spec.query ?? []).map((q) => ({ name: q.name, in: 'query', required: q.required ?? false, description: q.description, schema: { type: 'string' } }));
  const errorResponse = (description: string) => ({ description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });
  const success = spec.produces ? { description: 'success', content: { [spec.produces]: { schema: { type: 'string' } } } } : { description: 'success' };
  const responses: Record<string, unknown> = { [String(spec.success ?? 200)]: success, default: errorResponse('error') };
  if (spec.auth) responses['401'] = errorResponse('missing or invalid admin token');
  if (spec.requestBody) responses['422'] = errorResponse('the body fails validation; problems name each field');
  return {
    summary: spec.summary,
    ...(params.length + query.length > 0 ? { parameters: [...params, ...query] } : {}),
    ...(spec.auth ? { security: [{ bearer: [] }] } : {}),
    ...(spec.requestBody
      ? { requestBody: { required: true, content: { 'application/json': { schema: zodToJsonSchema(spec.requestBody, { target: 'openApi3', $refStrategy: 'none' }) } } } }
      : {}),
    responses,
  };
}

export function openApiDocument(router: Router, version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const spec of router.routes()) {
    paths[spec.path] ??= {};
    paths[spec.path]![spec.method.toLowerCase()] = operation(spec);
  }
  return {
    openapi: '3.0.3',
    info: { title: 'Skein control plane admin API', version },
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'the admin token (SKEIN_ADMIN_TOKEN or <data-dir>/admin-token)' } },
      schemas: { Error: errorSchema },
    },
  };
}

export function registerMetaRoutes(router: Router, version: string): void {
  router
    .add({ method: 'GET', path: '/healthz', summary: 'Liveness', auth: false, handler: async () => ({ body: { status: 'ok' } }) })
    .add({
      method: 'GET',
      path: '/api/v1/openapi.json',
      summary: 'This OpenAPI description',
      auth: false,
      handler: async () => ({ body: openApiDocument(router, version) }),
    });
}
