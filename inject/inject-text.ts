/** `skein inject`'s whole job on one file's text: Kubernetes YAML or a Compose file in, the injected text out. */
import { parseAllDocuments } from 'yaml';
import { injectCompose, looksLikeCompose } from './compose.js';
import { assertParsed, injectKubernetesDocuments, type InjectResult } from './kubernetes.js';
import type { InjectOptions } from './options.js';

export type { InjectResult };

export function injectText(text: string, options: InjectOptions): InjectResult & { format: 'kubernetes' | 'compose' } {
  // Merge keys (`<<: *common`) are YAML 1.1, which Compose files (and kubectl) use for shared blocks.
  const docs = parseAllDocuments(text, { merge: true });
  const list = Array.isArray(docs) ? docs : [docs];
  assertParsed(list);
  if (looksLikeCompose(list)) {
    const doc = list.find((d) => d.contents !== null)!;
    return { ...injectCompose(doc, options), format: 'compose' };
  }
  return { ...injectKubernetesDocuments(text, list, options), format: 'kubernetes' };
}
