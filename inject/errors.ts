/**
 * Why a manifest could not be injected. Every error names the document (its position in the
 * file and, when it has one, `kind/name`) and the field at fault, so a user can find it in a
 * long multi-document file; nothing is written when one is raised.
 */
export type InjectErrorCode = 'not-yaml' | 'unknown-kind' | 'no-service-name' | 'no-app-port' | 'host-network' | 'invalid-field' | 'name-conflict';

export class InjectError extends Error {
  override name = 'InjectError';

  constructor(
    readonly code: InjectErrorCode,
    /** e.g. `document 3 (Deployment/orders)` */
    readonly document: string,
    /** e.g. `spec.template.spec.containers`; empty when the whole document is at fault */
    readonly field: string,
    /** What is wrong, without the document and field. */
    readonly detail: string,
  ) {
    super(`${document}${field ? `, field ${field}` : ''}: ${detail}`);
  }
}

/** How errors name a document: 1-based position, plus kind/name when known. */
export function describeDocument(index: number, kind?: unknown, name?: unknown): string {
  const id = typeof kind === 'string' && kind ? ` (${kind}${typeof name === 'string' && name ? `/${name}` : ''})` : '';
  return `document ${index + 1}${id}`;
}
