/**
 * Where config enters a process: YAML or JSON text (or an already-decoded object) becomes a
 * validated `Snapshot`, or a `ConfigError` whose messages name the exact path of each fault,
 * e.g. `routes.catalog[1].split: weights must sum to 100`.
 */
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { ZodError, ZodType, ZodTypeDef } from 'zod';
import { authoredSnapshot, snapshot, type Snapshot } from './schema.js';
import { snapshotSubsetProblems } from './subset-uses.js';

export class ConfigError extends Error {
  readonly problems: string[];

  constructor(problems: string[]) {
    super(problems.join('; '));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** `['routes', 'catalog', 1, 'split']` → `routes.catalog[1].split` */
export function formatPath(path: (string | number)[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? part : `.${part}`;
  }
  return out || '(root)';
}

export function zodProblems(err: ZodError): string[] {
  return err.issues.map((issue) => {
    let message = issue.message;
    if (issue.code === 'unrecognized_keys') message = `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    return `${formatPath(issue.path)}: ${message}`;
  });
}

/** Validates any decoded value against a schema, throwing ConfigError with precise paths. */
export function validate<Out, In>(schema: ZodType<Out, ZodTypeDef, In>, value: unknown): Out {
  const result = schema.safeParse(value);
  if (!result.success) throw new ConfigError(zodProblems(result.error));
  return result.data;
}

/** Decodes YAML (a superset of JSON) text, throwing ConfigError with the line on syntax errors. */
export function decodeText(text: string, source = 'config'): unknown {
  try {
    return parseYaml(text, { strict: true, uniqueKeys: true });
  } catch (err) {
    if (err instanceof YAMLParseError) {
      const where = err.linePos?.[0] ? ` at line ${err.linePos[0].line}, column ${err.linePos[0].col}` : '';
      // The library's message ends with its own "at line L, column C:" (given above already), and
      // the one for a second document names a function of its API.
      const what = err.code === 'MULTIPLE_DOCS'
        ? 'a second document starts here (a "---" line); a snapshot is one document'
        : err.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      throw new ConfigError([`${source}: not valid YAML or JSON${where}: ${what}`]);
    }
    // The library refuses some input with a plain error, no position (an alias expanding past its limit: a "billion laughs").
    throw new ConfigError([`${source}: not valid YAML or JSON: ${(err as Error).message}`]);
  }
}

/**
 * A snapshot from YAML/JSON text or a decoded value. Nothing at all (an empty file, or one of
 * only whitespace and comments, decodes to null) is refused rather than taken as a snapshot
 * with nothing in it: a file read while an editor, `cp` or a ConfigMap update has just
 * truncated it would otherwise remove every service and route at once. `{}` is the empty
 * snapshot, for whoever means it.
 */
export function parseSnapshot(input: string | unknown, source = 'config'): Snapshot {
  return parseWith(snapshot, input, source);
}

/**
 * A snapshot an operator wrote (a static config file): as parseSnapshot, and also refused for
 * what a write to the control plane is, e.g. an intention rule that never decides
 * (`authoredSnapshot`). A pushed snapshot is not: it holds what the store holds. With
 * `endpointsInFile` (a static sidecar without --consul) its endpoints are every instance
 * there is, so a split or mirror naming a subset none of them has is refused as well, as the
 * control plane refuses it against the instances it knows.
 */
export function parseAuthoredSnapshot(input: string | unknown, source = 'config', { endpointsInFile = false } = {}): Snapshot {
  const parsed = parseWith(authoredSnapshot, input, source);
  const problems = endpointsInFile ? snapshotSubsetProblems(parsed) : [];
  if (problems.length > 0) throw new ConfigError(problems);
  return parsed;
}

function parseWith(schema: ZodType<Snapshot, ZodTypeDef, unknown>, input: string | unknown, source: string): Snapshot {
  const value = typeof input === 'string' ? decodeText(input, source) : input;
  if (value === null || value === undefined) throw new ConfigError([`${source}: empty (no YAML or JSON document in it); write {} for a snapshot with nothing in it`]);
  return validate(schema, value);
}
