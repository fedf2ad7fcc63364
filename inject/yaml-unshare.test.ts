import { parse } from 'yaml';
import { describe, expect, test } from 'vitest';
import { injectText } from './inject-text.js';
import { DEFAULT_INJECT_OPTIONS } from './options.js';

type Obj = Record<string, any>;

const deployment = (name: string, template: string): string => `
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {name: ${name}}
    spec:
      selector: {matchLabels: {app: ${name}}}
      template:
${template}`;

/** The pod spec of each item, as kubectl reads the output (merge keys resolved). */
function podSpecs(items: string): Obj[] {
  const output = injectText(`apiVersion: v1\nkind: List\nitems:${items}`, DEFAULT_INJECT_OPTIONS).output;
  return (parse(output, { merge: true }) as Obj).items.map((item: Obj) => item.spec.template.spec);
}

const sidecarOf = (spec: Obj): Obj | undefined => spec.initContainers?.find((c: Obj) => c.name === 'skein-sidecar');
const env = (spec: Obj, name: string): string => sidecarOf(spec)!.env.find((e: Obj) => e.name === name).value;

describe('workloads sharing YAML nodes each get their own sidecar, and only those injected', () => {
  test('an opted-out workload merging (<<) an injected pod spec gets none of its sidecar', () => {
    const [a, b] = podSpecs(
      deployment('a', '        metadata: {labels: {app: a}}\n        spec: &pod\n          containers: [{name: a, image: x, ports: [{containerPort: 8080}]}]\n')
      + deployment('b', '        metadata: {labels: {app: b}, annotations: {skein.io/inject: "false"}}\n        spec:\n          <<: *pod\n'),
    );
    expect(env(a!, 'SKEIN_SERVICE')).toBe('a');
    expect(b).toEqual({ containers: [{ name: 'a', image: 'x', ports: [{ containerPort: 8080 }] }] });
  });

  test('a template from a merge keeps its containers: the pod spec is the workload\'s own copy, then changed', () => {
    const [spec] = podSpecs(deployment('m', '        <<: &tpl\n          metadata: {labels: {app: m}}\n          spec:\n            containers: [{name: m, image: x, ports: [{containerPort: 8080}]}]\n'));
    expect(spec!.containers).toEqual([{ name: 'm', image: 'x', ports: [{ containerPort: 8080 }] }]);
    expect(env(spec!, 'SKEIN_SERVICE')).toBe('m');
  });

  test('a merged pod spec shared by two versions gives each its own version', () => {
    const [v1, v2] = podSpecs(
      deployment('a', '        metadata: {labels: {app: cart, version: v1}}\n        spec: &pod\n          containers: [{name: a, image: x, ports: [{containerPort: 8080}]}]\n')
      + deployment('b', '        metadata: {labels: {app: cart, version: v2}}\n        spec:\n          <<: *pod\n'),
    );
    expect([env(v1!, 'SKEIN_VERSION'), env(v2!, 'SKEIN_VERSION')]).toEqual(['v1', 'v2']);
    expect(v2!.initContainers).toHaveLength(1);
  });

  test('a list anchored in a replaced field stays for the aliases naming it', () => {
    const [a, b] = podSpecs(
      deployment('a', '        metadata: {labels: {app: a}}\n        spec:\n          containers: [{name: a, image: x, ports: [{containerPort: 8080}]}]\n          volumes: &vols [{name: data, emptyDir: {}}]\n')
      + deployment('b', '        metadata: {labels: {app: b}, annotations: {skein.io/inject: "false"}}\n        spec:\n          containers: [{name: b, image: y}]\n          volumes: *vols\n'),
    );
    expect(a!.volumes.map((v: Obj) => v.name)).toEqual(['data', 'skein-bootstrap']);
    expect(b!.volumes).toEqual([{ name: 'data', emptyDir: {} }]);
  });

  test('a merge inside the pod spec is left as written: only the changed keys become its own', () => {
    const input = 'apiVersion: v1\nkind: Pod\nmetadata: {name: m, labels: {app: m}}\nspec:\n  <<: &podspec\n    containers: [{name: m, image: x, ports: [{containerPort: 8080}]}]\n    volumes: [{name: data, emptyDir: {}}]\n';
    const output = injectText(input, DEFAULT_INJECT_OPTIONS).output;
    expect(output).toContain('  <<: &podspec\n    containers: [{name: m, image: x, ports: [{containerPort: 8080}]}]\n');
    expect((parse(output, { merge: true }) as Obj).spec.volumes.map((v: Obj) => v.name)).toEqual(['data', 'skein-bootstrap']);
  });

  test('JSON output (a flow-style document) with a shared pod spec: the opted-out workload stays without', () => {
    const json = `{"apiVersion": "v1", "kind": "List", "items": [
      {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"}, "spec": {"selector": {}, "template": {"metadata": {"labels": {"app": "a"}}, "spec": &s {"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 8080}]}]}}}},
      {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "b"}, "spec": {"selector": {}, "template": {"metadata": {"labels": {"app": "a"}, "annotations": {"skein.io/inject": "false"}}, "spec": *s}}}]}`;
    const items = (JSON.parse(injectText(json, DEFAULT_INJECT_OPTIONS).output) as Obj).items;
    expect(items.map((i: Obj) => i.spec.template.spec.initContainers?.length)).toEqual([1, undefined]);
  });
});
