import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { openApiDocument } from './openapi.js';
import { Router, type RouteSpec } from './router.js';

const handler: RouteSpec['handler'] = async () => ({ body: {} });

function router(): Router {
  return new Router()
    .add({ method: 'GET', path: '/api/v1/routes/{service}', summary: 'get', auth: false, handler })
    .add({ method: 'PUT', path: '/api/v1/routes/{service}', summary: 'put', auth: true, requestBody: z.array(z.object({ a: z.number() })), handler })
    .add({ method: 'PUT', path: '/api/v1/routes/{service}/split', summary: 'split', auth: true, handler });
}

describe('Router', () => {
  it('matches paths with parameters, decoded', () => {
    const m = router().match('GET', '/api/v1/routes/cat%2Dalog');
    expect(m).toMatchObject({ kind: 'found', params: { service: 'cat-alog' } });
    expect(router().match('PUT', '/api/v1/routes/catalog/split')).toMatchObject({ kind: 'found', spec: { summary: 'split' } });
  });

  it('tells a wrong method from an unknown path', () => {
    expect(router().match('DELETE', '/api/v1/routes/catalog')).toEqual({ kind: 'method-not-allowed', allowed: ['GET', 'PUT'] });
    expect(router().match('GET', '/api/v1/routes/catalog/other')).toEqual({ kind: 'not-found' });
    expect(router().match('GET', '/api/v1/routes/%E0%A4%A')).toEqual({ kind: 'not-found' });
    expect(router().match('HEAD', '/api/v1/routes/catalog')).toMatchObject({ kind: 'found' });
  });

  it('refuses to register a route twice', () => {
    expect(() => router().add({ method: 'GET', path: '/api/v1/routes/{service}', summary: 'again', auth: false, handler })).toThrow(/registered twice/);
  });

  it('describes every registered route in the OpenAPI document, with auth and request schemas', () => {
    const r = router();
    const doc = openApiDocument(r, '1') as { paths: Record<string, Record<string, { security?: unknown; requestBody?: unknown; parameters?: unknown[] }>> };
    for (const spec of r.routes()) expect(doc.paths[spec.path]?.[spec.method.toLowerCase()], `${spec.method} ${spec.path}`).toBeDefined();
    const put = doc.paths['/api/v1/routes/{service}']!.put!;
    expect(put.security).toEqual([{ bearer: [] }]);
    expect(put.requestBody).toMatchObject({ content: { 'application/json': { schema: { type: 'array' } } } });
    expect(put.parameters).toEqual([expect.objectContaining({ name: 'service', in: 'path', required: true })]);
    expect(doc.paths['/api/v1/routes/{service}']!.get!.security).toBeUndefined();
  });
});
