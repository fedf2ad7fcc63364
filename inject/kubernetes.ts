/**
 * `skein inject` on Kubernetes YAML: every document of a multi-document file is injected in
 * place. Documents without a workload to inject come out byte for byte; in an injected one
 * only the pod-spec fields injection changes are rewritten, so comments elsewhere stay, but
 * comments inside a changed field (an existing `initContainers` or `volumes` list) are lost
 * and flow-style collections may be re-spaced.
 */
import { isDeepStrictEqual } from 'node:util';
import { isMap, type Document } from 'yaml';
import { InjectError, describeDocument } from './errors.js';
import type { InjectOptions } from './options.js';
import { applyOutcomes, getIn, injectObject, type WorkloadOutcome } from './workloads.js';
import { unshareForEdit } from './yaml-unshare.js';

/** How changed documents are written: flow collections as most manifests write them (`{app: x}`), scripts as literal blocks, no folding. */
export const TO_STRING = { flowCollectionPadding: false, blockQuote: 'literal', lineWidth: 0 } as const;

export interface InjectResult {
  readonly output: string;
  /** One line per workload found, e.g. `deployment/orders: injected (service orders, app port 8080)`. */
  readonly notes: string[];
  /** Settings that do not do what they seem to, e.g. ones on a Deployment's own metadata; printed even with `-q`. */
  readonly warnings: string[];
}

export function describeOutcome(o: { what: string; status: WorkloadOutcome['status']; params?: WorkloadOutcome['params'] }): string {
  if (o.status !== 'injected' || !o.params) return `${o.what}: ${o.status === 'opted-out' ? 'opted out, left as is' : 'already injected, left as is'}`;
  const p = o.params;
  return `${o.what}: injected (service ${p.service}, version ${p.version}, app port ${p.appPort}${p.transparent ? ', transparent' : ''}${p.accessLog === 'off' ? '' : `, access log ${p.accessLog}`})`;
}

export function injectKubernetesDocuments(source: string, docs: Document.Parsed[], options: InjectOptions): InjectResult {
  const notes: string[] = [];
  const warnings: string[] = [];
  let start = 0;
  const parts = docs.map((doc, index) => {
    const from = start;
    const original = source.slice(from, doc.range[2]);
    start = doc.range[2];
    const obj: unknown = doc.toJS();
    if (obj === null || obj === undefined) return original;
    const outcomes = injectObject(obj, index, options);
    notes.push(...outcomes.map(describeOutcome));
    warnings.push(...outcomes.flatMap((o) => (o.warning ? [`${o.what}: ${o.warning}`] : [])));
    if (!outcomes.some((o) => o.spec)) return original;
    // JSON in (`kubectl get -o json`), JSON out.
    // What precedes the object (a `---` separator, comments) stays: without it the JSON would run into the document before.
    if (isMap(doc.contents) && doc.contents.flow) return `${source.slice(from, doc.contents.range[0])}${JSON.stringify(applyOutcomes(obj, outcomes), null, 2)}\n`;
    const edits = outcomes.flatMap(({ spec, specPath }) => {
      if (!spec) return [];
      const old = getIn(obj, specPath) as Record<string, unknown>;
      return [{ specPath, changed: Object.entries(spec).filter(([key, value]) => !isDeepStrictEqual(old[key], value)) }];
    });
    // All sharing is undone before the first edit, so every copy holds the original.
    for (const { specPath, changed } of edits) unshareForEdit(doc, specPath, changed.map(([key]) => key));
    for (const { specPath, changed } of edits) {
      for (const [key, value] of changed) doc.setIn([...specPath, key], doc.createNode(value));
    }
    return doc.toString(TO_STRING);
  });
  return { output: parts.join('') + source.slice(start), notes, warnings };
}

/** Parse errors become an InjectError naming the document and line. */
export function assertParsed(docs: Document.Parsed[]): void {
  docs.forEach((doc, index) => {
    const err = doc.errors[0];
    if (!err) return;
    const line = err.linePos?.[0]?.line;
    throw new InjectError('not-yaml', describeDocument(index), '', `not valid YAML${line ? ` (line ${line})` : ''}: ${err.message.split('\n')[0]}`);
  });
}
