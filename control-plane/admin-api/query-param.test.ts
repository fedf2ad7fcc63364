import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ApiError } from './errors.js';
import { EMPTY_IS_ABSENT, queryParam, type QueryParamOptions } from './query-param.js';

const word = z.string().regex(/^[a-z]+$/, 'must be lowercase letters');

/** What `queryParam` makes of `name` in `search`: its value, or the refusal's status, code and message. */
function read(search: string, options?: QueryParamOptions): unknown {
  try {
    return queryParam(new URLSearchParams(search), 'name', word, options);
  } catch (err) {
    return err instanceof ApiError ? [err.status, err.code, err.message] : err;
  }
}

describe('queryParam', () => {
  it('reads a value with its schema; absent is undefined', () => {
    expect(read('name=cat')).toBe('cat');
    expect(read('other=x')).toBeUndefined();
    expect(read('name=Cat')).toEqual([400, 'bad-request', 'name must be lowercase letters (got "Cat")']);
  });

  it('refuses an empty value, which a default would otherwise quietly replace, unless the route takes empty as absent', () => {
    expect(read('name=')).toEqual([400, 'bad-request', 'name must not be empty (got "")']);
    expect(read('name')).toEqual([400, 'bad-request', 'name must not be empty (got "")']);
    expect(read('name=', EMPTY_IS_ABSENT)).toBeUndefined();
  });

  it('refuses a parameter given twice rather than picking one of its values', () => {
    const twice = [400, 'bad-request', 'name must be given once (got "cat", "Dog")'];
    expect(read('name=cat&name=Dog')).toEqual(twice);
    expect(read('name=cat&name=Dog', EMPTY_IS_ABSENT)).toEqual(twice);
    expect(read('name=&name=cat', EMPTY_IS_ABSENT)).toEqual([400, 'bad-request', 'name must be given once (got "", "cat")']);
  });
});
