import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ApiError } from './errors.js';
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
    expect(router().match('HEAD', '/api/v1/routes/catalog')).toMatchObject({ kind: 'found' });
  });

  it('refuses a malformed path parameter as 400 naming it, on every route alike, before any handler', () => {
    const refusal = (method: string, path: string) => {
      try {
        router().match(method, path);
      } catch (err) {
        return err instanceof ApiError ? [err.status, err.code, err.message] : err;
      }
      return 'matched';
    };
    expect(refusal('GET', '/api/v1/routes/%E0%A4%A')).toEqual([400, 'bad-request', '{service} is not valid percent-encoding (got "%E0%A4%A")']);
    expect(refusal('GET', '/api/v1/routes/%zz')).toEqual([400, 'bad-request', '{service} is not valid percent-encoding (got "%zz")']);
    const notAName = [400, 'bad-request', '{service} must be a DNS label: lowercase letters, digits and "-", at most 63 characters (got "Bad_Name")'];
    expect(refusal('GET', '/api/v1/routes/Bad_Name')).toEqual(notAName);
    expect(refusal('PUT', '/api/v1/routes/Bad_Name/split')).toEqual(notAName);
    // A wrong method is still told as such; a parameter no table names is the handler's.
    expect(refusal('DELETE', '/api/v1/routes/Bad_Name')).toBe('matched');
    const other = new Router().add({ method: 'GET', path: '/dashboard/{file}', summary: 'file', auth: false, handler });
    expect(other.match('GET', '/dashboard/App.JS')).toMatchObject({ kind: 'found', params: { file: 'App.JS' } });
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
