/** Reading an admin API request's parameters (of its query, or of its path: see router.ts) against a schema. */
import type { z } from 'zod';
import { ApiError } from './errors.js';

/**
 * Query parameter `name`, or undefined when absent or empty (as a form leaves an unused
 * field). A malformed one is a 400 naming it: a filter that can match nothing, or a limit
 * quietly replaced by the default, would answer a question that was not asked.
 */
export function queryParam<T>(query: URLSearchParams, name: string, schema: z.ZodType<T, z.ZodTypeDef, string>): T | undefined {
  const value = query.get(name);
  if (!value) return undefined;
  return parameter(name, value, schema);
}

/** `value` of the parameter `label` names, read with `schema`; a malformed one is a 400 naming it and what was sent. */
export function parameter<T>(label: string, value: string, schema: z.ZodType<T, z.ZodTypeDef, string>): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ApiError('bad-request', `${label} ${parsed.error.issues[0]!.message} (got ${JSON.stringify(value)})`);
  return parsed.data;
}
