import { describe, expect, it } from 'vitest';
import type { ServiceView } from '../../control-plane/admin-api/services-routes.js';
import type { CanaryState } from '../../control-plane/canary/controller.js';
import { judgeCanaries, judgeDefaultAction, judgeSplitSubsets, judgeStoredConfig } from './config.js';

describe('judgeDefaultAction', () => {
  it('warns when intentions allow by default, or none are configured (the mesh then allows every call)', () => {
    expect(judgeDefaultAction({ defaultAction: 'allow', rules: [] })).toMatchObject({ status: 'warning', hint: expect.stringContaining('skein intention default deny') });
    expect(judgeDefaultAction(undefined).status).toBe('warning');
    expect(judgeDefaultAction({ defaultAction: 'deny', rules: [{ source: 'web', destination: 'api', action: 'allow' }] })).toMatchObject({ status: 'ok', message: 'intentions deny by default (1 rule)' });
    // Stored without a default: deny, as the sidecars read it.
    expect(judgeDefaultAction({}).status).toBe('ok');
  });
});

const instance = (id: string, version: string, health = 'healthy') => ({ id, address: '127.0.0.1', port: 1, version, labels: { version }, health });

function service(name: string, instances: ServiceView['instances'], subsets: string[], problems?: string[]): ServiceView {
  return {
    name, protocol: 'http', instances, hasPolicy: true, hasRoutes: true,
    subsets: subsets.map((s) => ({ name: s, labels: { version: s }, declared: true, instances: 0 })),
    ...(problems ? { problems } : {}),
  };
}

describe('judgeSplitSubsets', () => {
  const catalog = service('catalog', [instance('c1', 'v1'), instance('c2', 'v2', 'critical')], ['v1', 'v2', 'v3']);

  it('is ok when every weighted subset has a healthy instance (a zero weight sends nothing)', () => {
    expect(judgeSplitSubsets({ catalog: [{ split: { v1: 100, v3: 0 } }] }, [catalog]).status).toBe('ok');
  });

  it('warns of splits to a subset with no instance, or none healthy, naming the rule', () => {
    const result = judgeSplitSubsets({ catalog: [{ name: 'canary', split: { v3: 100 } }, { split: { v1: 90, v2: 10 } }] }, [catalog]);
    expect(result).toMatchObject({
      status: 'warning',
      details: ['catalog rule canary sends 100% to subset v3, which no instance has', 'catalog rule rule-1 sends 10% to subset v2, none of whose 1 instance is healthy'],
    });
  });
});

describe('judgeStoredConfig', () => {
  it('fails when a stored entry is refused, naming it', () => {
    expect(judgeStoredConfig([service('a', [], [])]).status).toBe('ok');
    expect(judgeStoredConfig([service('a', [], [], ['policies/a: timeout: invalid duration'])])).toMatchObject({ status: 'failure', details: ['a: policies/a: timeout: invalid duration'] });
  });
});

describe('judgeCanaries', () => {
  function canary(service: string, fields: Partial<CanaryState>): CanaryState {
    return {
      service, spec: { from: 'v1', to: 'v2', steps: [10, 50], interval: 30_000 } as CanaryState['spec'], status: 'running', step: 0, weight: 10,
      startedAt: '2026-12-08T00:00:00.000Z', stepStartedAt: '2026-12-08T00:00:00.000Z', updatedAt: '2026-12-08T00:00:00.000Z', analyses: [], ...fields,
    };
  }

  it('is ok for rollouts running, succeeded or aborted; warns of one paused or rolled back', () => {
    expect(judgeCanaries([canary('a', {}), canary('b', { status: 'succeeded' }), canary('c', { status: 'aborted' })])).toMatchObject({ status: 'ok', message: '1 canary rollout running, none paused or rolled back' });
    const result = judgeCanaries([canary('a', { paused: { at: '2026-12-08T00:01:00.000Z', reason: 'weekend' } }), canary('b', { status: 'rolled-back', reason: 'success rate 80% < 99%' })]);
    expect(result).toMatchObject({ status: 'warning', details: ['a: v1 → v2 paused at 10% v2 since 2026-12-08T00:01:00.000Z: weekend', 'b: v1 → v2 rolled back: success rate 80% < 99%'] });
  });
});
