import { describe, expect, test } from 'vitest';
import { DEFAULT_INJECT_OPTIONS } from './options.js';
import { injectObject } from './workloads.js';

function rollout(own: Record<string, unknown>, template: Record<string, unknown>): unknown {
  return {
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'Rollout',
    metadata: { name: 'checkout', ...own },
    spec: { template: { metadata: { labels: { app: 'checkout' }, ...template }, spec: { containers: [{ name: 'c', image: 'c', ports: [{ containerPort: 8080 }] }] } } },
  };
}

describe('an unknown kind carrying a pod template', () => {
  test('is refused unless opted out', () => {
    expect(() => injectObject(rollout({}, {}), 0, DEFAULT_INJECT_OPTIONS)).toThrow(/unknown workload kind argoproj.io\/v1alpha1 Rollout/);
  });

  test('passes through when opted out on its own metadata', () => {
    expect(injectObject(rollout({ annotations: { 'skein.io/inject': 'false' } }, {}), 0, DEFAULT_INJECT_OPTIONS)).toEqual([]);
  });

  // Where known kinds read the opt-out (and where the webhook sees it on every pod): the pod template.
  test('passes through when its pod template opts out, by annotation or label', () => {
    expect(injectObject(rollout({}, { annotations: { 'skein.io/inject': 'false' } }), 0, DEFAULT_INJECT_OPTIONS)).toEqual([]);
    expect(injectObject(rollout({}, { labels: { app: 'checkout', 'skein.io/inject': 'false' } }), 0, DEFAULT_INJECT_OPTIONS)).toEqual([]);
  });
});

describe("settings on a workload's own metadata", () => {
  // Its pods never carry them, so neither the webhook nor skein inject reads them: said, not silently dropped.
  test('skein.io/access-log there is ignored, with a warning naming it', () => {
    const deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'orders', annotations: { 'skein.io/access-log': 'json' } },
      spec: { template: { metadata: { labels: { app: 'orders' } }, spec: { containers: [{ name: 'c', image: 'c', ports: [{ containerPort: 8080 }] }] } } },
    };
    const [outcome] = injectObject(deployment, 0, DEFAULT_INJECT_OPTIONS);
    expect(outcome!.params!.accessLog).toBe('off');
    expect(outcome!.warning).toMatch(/^metadata\.annotations\.skein\.io\/access-log is set on the Deployment itself, not on its pod template, and ignored/);
  });
});
