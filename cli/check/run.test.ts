/** runChecks over a scripted admin API: what is read, read again, and what a failed read does. */
import { describe, expect, it } from 'vitest';
import { AdminApiError, type AdminResponse } from '../admin-client.js';
import type { Expected } from '../answers.js';
import { runChecks, type CheckDeps } from './run.js';

const NOW = Date.parse('2026-12-08T00:00:00.000Z');

type Answers = Record<string, unknown | (() => unknown)>;

const proxy = (state: string, ackedVersion: string) => ({ id: 'w', service: 'web', instance: 'web-1', state, ackedVersion, nackedVersion: null, nackReason: null, certExpiry: null, runsWithout: [] });

function healthy(): Answers {
  return {
    '/api/v1/openapi.json': { openapi: '3.0.3', info: { title: 'Skein control plane admin API', version: '0.1.0' } },
    '/api/v1/ca': { trustDomain: 'skein.local', roots: [{ fingerprint: 'AA', notAfter: '2036-01-01T00:00:00.000Z', signing: true }], rotation: { phase: 'idle', rotating: false, waitingFor: [] } },
    '/api/v1/proxies': { snapshotVersion: '42', proxies: [proxy('SYNCED', '42')] },
    '/api/v1/intentions': { defaultAction: 'deny', rules: [] },
    '/api/v1/services': [{ name: 'web', instances: [], subsets: [] }],
    '/api/v1/routes': {},
    '/api/v1/canaries/web': new AdminApiError(404, 'not-found', 'no canary rollout of web has been started'),
    '/api/v1/apply/check': new AdminApiError(422, 'unprocessable', 'nothing to apply'),
  };
}

/** A fake admin client answering from `answers` (an AdminApiError is thrown), checking each answer's shape as the real one does; `slept` collects the waits. */
function deps(answers: Answers, slept: number[] = []): CheckDeps {
  const answer = <T>(path: string, expected?: Expected<T>): Promise<AdminResponse<T>> => {
    const entry = answers[path];
    const body = typeof entry === 'function' ? (entry as () => unknown)() : entry;
    if (body instanceof AdminApiError) return Promise.reject(body);
    if (expected && !expected.matches(body, 200)) return Promise.reject(new AdminApiError(0, 'not-skein', `${path} answered something else`));
    return Promise.resolve({ status: 200, headers: new Headers(), body: body as T });
  };
  return {
    api: { baseUrl: 'http://cp:15080', get: answer, post: (path, _body, expected) => answer(path, expected) },
    tokenSet: true,
    now: () => NOW,
    sleep: async (ms) => void slept.push(ms),
    graceMs: 2000,
  };
}

const statuses = (results: { name: string; status: string }[]) => Object.fromEntries(results.map((r) => [r.name, r.status]));

describe('runChecks', () => {
  it('passes every check of a healthy mesh without waiting', async () => {
    const slept: number[] = [];
    const results = await runChecks(deps(healthy(), slept));
    expect(results.filter((r) => r.status !== 'ok')).toEqual([]);
    expect(results.map((r) => r.name)).toEqual(['control-plane-answers', 'admin-token', 'ca-root', 'ca-rotation', 'proxies-connected', 'proxies-converged', 'workload-certificates', 'proxies-runs-without', 'intentions-default', 'stored-config', 'split-subsets', 'canaries']);
    expect(slept).toEqual([]);
  });

  it('reads the proxies again after the grace before calling a sidecar behind: a push in flight is not', async () => {
    const reads = [proxy('STALE', '41'), proxy('SYNCED', '42')];
    const slept: number[] = [];
    const results = await runChecks(deps({ ...healthy(), '/api/v1/proxies': () => ({ snapshotVersion: '42', proxies: [reads.shift()] }) }, slept));
    expect(slept).toEqual([2000]);
    expect(statuses(results)['proxies-converged']).toBe('ok');
    const still = await runChecks(deps({ ...healthy(), '/api/v1/proxies': { snapshotVersion: '42', proxies: [proxy('STALE', '41')] } }));
    expect(statuses(still)['proxies-converged']).toBe('warning');
  });

  it('checks nothing more when the control plane does not answer', async () => {
    const results = await runChecks(deps({ '/api/v1/openapi.json': new AdminApiError(0, 'unreachable', 'cannot reach the control plane at http://cp:15080: ECONNREFUSED') }));
    expect(results).toEqual([expect.objectContaining({ name: 'control-plane-answers', status: 'failure', message: expect.stringContaining('http://cp:15080') })]);
  });

  it('fails the checks a failed read was for, and runs the others', async () => {
    const results = await runChecks(deps({ ...healthy(), '/api/v1/ca': new AdminApiError(500, 'internal', 'internal error') }));
    expect(results.find((r) => r.name === 'ca-root')).toMatchObject({ status: 'failure', message: 'cannot read the CA (GET /api/v1/ca): internal error' });
    expect(statuses(results)).toMatchObject({ 'proxies-converged': 'ok', canaries: 'ok' });
  });

  it('takes the refusal of an empty apply file (422) as the token accepted, a 401 as refused', async () => {
    expect(statuses(await runChecks(deps(healthy())))['admin-token']).toBe('ok');
    const refused = await runChecks(deps({ ...healthy(), '/api/v1/apply/check': new AdminApiError(401, 'unauthorized', 'invalid admin token') }));
    expect(statuses(refused)['admin-token']).toBe('failure');
  });

  it('takes no stored intentions (404) as allow-all, a warning', async () => {
    const results = await runChecks(deps({ ...healthy(), '/api/v1/intentions': new AdminApiError(404, 'not-found', 'no intentions') }));
    expect(statuses(results)['intentions-default']).toBe('warning');
  });
});
