/**
 * Golden files: each manifest in fixtures/ is injected and compared with its
 * `<name>.golden.<ext>` (UPDATE_GOLDEN=1 rewrites them; review the diff). Every output must
 * validate against the Kubernetes schemas (Compose: the compose-spec schema) and inject to
 * itself a second time. Each file in fixtures/errors/ must fail with the message its first
 * line announces.
 */
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments, parse } from 'yaml';
import { describe, expect, test } from 'vitest';
import { injectText } from '../../inject/inject-text.js';
import { DEFAULT_INJECT_OPTIONS, type InjectOptions } from '../../inject/options.js';
import { InjectError } from '../../inject/errors.js';
import { validateKubernetesObject } from './kubernetes-schema.js';
import { validateCompose } from './compose-schema.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const COMPOSE_OPTIONS: InjectOptions = { ...DEFAULT_INJECT_OPTIONS, controlPlane: 'control-plane:15012', consul: 'http://consul:8500' };
const inputs = readdirSync(FIXTURES).filter((f) => /\.(ya?ml|json)$/.test(f) && !f.includes('.golden.'));
const optionsFor = (file: string): InjectOptions => (file.startsWith('compose') ? COMPOSE_OPTIONS : DEFAULT_INJECT_OPTIONS);

describe('inject golden files', () => {
  test.each(inputs)('%s', async (file) => {
    const input = readFileSync(join(FIXTURES, file), 'utf8');
    const result = injectText(input, optionsFor(file));
    const goldenFile = join(FIXTURES, file.replace(/\.(ya?ml|json)$/, '.golden.$1'));
    if (process.env.UPDATE_GOLDEN || !existsSync(goldenFile)) writeFileSync(goldenFile, result.output);
    expect(result.output).toBe(readFileSync(goldenFile, 'utf8'));

    if (result.format === 'compose') {
      validateCompose(parse(result.output, { merge: true }));
    } else {
      for (const [i, doc] of parseAllDocuments(result.output).entries()) await validateKubernetesObject(doc.toJS(), `document ${i + 1}`);
    }
    // Injecting the output again changes nothing.
    const again = injectText(result.output, optionsFor(file));
    expect(again.output).toBe(result.output);
    expect(again.notes.some((n) => n.includes(': injected'))).toBe(false);
  });
});

describe('inject refuses invalid input, naming document and field', () => {
  const errorFiles = readdirSync(join(FIXTURES, 'errors'));
  test.each(errorFiles)('%s', (file) => {
    const input = readFileSync(join(FIXTURES, 'errors', file), 'utf8');
    const expected = /^# expect-error: (.*)$/m.exec(input)?.[1];
    expect(expected, 'first line announces the error').toBeDefined();
    let error: unknown;
    try {
      injectText(input, optionsFor(file));
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(InjectError);
    expect((error as Error).message).toContain(expected);
  });
});
