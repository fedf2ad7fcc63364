/** Checks a parsed JSON body against a zod schema; failures are 422 with every problem named by path. */
import type { z } from 'zod';
import { HttpError } from './http-errors.js';

export function validate<S extends z.ZodTypeAny>(schema: S, value: unknown, code = 'invalid-request'): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => (i.path.length ? `${formatPath(i.path)}: ${i.message}` : i.message));
  throw new HttpError(422, code, problems.join('; '), problems);
}

/** `items[0].quantity`, the way a person would point at the field in their JSON. */
function formatPath(path: (string | number)[]): string {
  return path.map((p, n) => (typeof p === 'number' ? `[${p}]` : n === 0 ? p : `.${p}`)).join('');
}
