import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { injectText } from './inject-text.js';
import { DEFAULT_INJECT_OPTIONS } from './options.js';

const POD_JSON = '{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "p"}}, "spec": {"containers": [{"name": "c", "image": "c", "ports": [{"containerPort": 80}]}]}}';

describe('a JSON (flow-style) document injected in a multi-document file', () => {
  it('keeps the document separator and comments before it, so the output is still one document per object', () => {
    const input = `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n# the pod\n${POD_JSON}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}\n`;
    const { output } = injectText(input, DEFAULT_INJECT_OPTIONS);
    const docs = parseAllDocuments(output);
    expect(docs.flatMap((d) => d.errors)).toEqual([]);
    expect(docs.map((d) => (d.toJS() as { kind: string }).kind)).toEqual(['ConfigMap', 'Pod', 'ConfigMap']);
    expect(output).toContain('---\n# the pod\n{');
    expect((docs[1]!.toJS() as { spec: { initContainers: Array<{ name: string }> } }).spec.initContainers[0]!.name).toBe('skein-sidecar');
  });
});
