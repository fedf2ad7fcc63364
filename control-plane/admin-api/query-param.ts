/** Reading an admin API request's parameters (of its query, or of its path: see router.ts) against a schema. */
import type { z } from 'zod';
import { ApiError } from './errors.js';

export interface QueryParamOptions {
  /**
   * Given empty, the parameter counts as not given, as a form leaves a filter it did not use
   * (`?service=&limit=`): for a filter, where nothing given means "any", and only where the
   * route documents it. Otherwise an empty one is a 400 naming it, as a malformed one is.
   */
  readonly emptyIsAbsent?: boolean;
}

export const EMPTY_IS_ABSENT: QueryParamOptions = { emptyIsAbsent: true };

/**
 * Query parameter `name`, or undefined when absent. A malformed one, an empty one (unless
 * `emptyIsAbsent`) or one given more than once is a 400 naming it: a filter that can match
 * nothing, a limit quietly replaced by the default, or one of two values quietly picked, would
 * answer a question that was not asked.
 */
export function queryParam<T>(query: URLSearchParams, name: string, schema: z.ZodType<T, z.ZodTypeDef, string>, options: QueryParamOptions = {}): T | undefined {
  const value = singleValue(query, name);
  if (value === undefined || (value === '' && options.emptyIsAbsent)) return undefined;
  if (value === '') throw new ApiError('bad-request', `${name} must not be empty (got "")`);
  return parameter(name, value, schema);
}

/**
 * A flag such as `?force=true`: true, 1 or empty is true; absent, false or 0 is false; anything
 * else is a 400 naming it, not a silent no, and so is one given twice, neither value taken.
 */
export function booleanParam(query: URLSearchParams, name: string): boolean {
  const value = singleValue(query, name);
  if (value === undefined || value === 'false' || value === '0') return false;
  if (value === '' || value === 'true' || value === '1') return true;
  throw new ApiError('bad-request', `${name} must be true or false (got ${JSON.stringify(value)})`);
}

/** The one value of query parameter `name` as sent, or undefined when absent; given twice, a 400 naming it. */
export function singleValue(query: URLSearchParams, name: string): string | undefined {
  const values = query.getAll(name);
  if (values.length > 1) throw new ApiError('bad-request', `${name} must be given once (got ${values.map((v) => JSON.stringify(v)).join(', ')})`);
  return values[0];
}

/** `value` of the parameter `label` names, read with `schema`; a malformed one is a 400 naming it and what was sent. */
export function parameter<T>(label: string, value: string, schema: z.ZodType<T, z.ZodTypeDef, string>): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ApiError('bad-request', `${label} ${parsed.error.issues[0]!.message} (got ${JSON.stringify(value)})`);
  return parsed.data;
}
