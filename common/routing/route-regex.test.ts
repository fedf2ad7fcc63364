import { describe, expect, it } from 'vitest';
import { runsInLinearTime, wholeValueRegExp } from './route-regex.js';

describe('runsInLinearTime', () => {
  it('is true for what V8 linear-time engine can run: classes, alternatives, repeats, counts up to 16', () => {
    for (const source of ['/x.*a.*a.*a.*b', '/poly.*a.*a.*a.*b', '^/api/v[0-9]+/.*', '(a|ab)+', '[0-9]{1,16}', 'a{16}', 'a{2,}', '(?<id>[0-9]+)/x', '\\bfoo\\b', '(?:a{0,4}){0,4}']) {
      expect(runsInLinearTime(source), source).toBe(true);
    }
  });

  it('is false for lookaround, backreferences and counts above 16 (V8: "Cannot be executed in linear time")', () => {
    for (const source of [
      '/x.*a.*a.*a.*(?=b)b',
      '/x.*a.*a.*a.*b|(a)\\1',
      '/x[a-z]{0,17}.*a.*a.*a.*b',
      '(?!admin)[a-z]+',
      '(?<=/)x',
      '(?<!/)x',
      '(?<n>a)\\k<n>',
      '[0-9]{1,20}',
      'a{17}',
      '(?:a{0,5}){0,5}',
    ]) {
      expect(runsInLinearTime(source), source).toBe(false);
    }
  });

  it('is false for a source that is not a regex, rather than throwing', () => {
    expect(runsInLinearTime('(')).toBe(false);
  });

  it('leaves ordinary route regexes on the usual engine (the flag changes no result)', () => {
    expect(wholeValueRegExp('/x.*a.*a.*a.*b').flags).toBe('');
    expect(wholeValueRegExp('/users/[0-9]+').test('/users/42')).toBe(true);
    expect(wholeValueRegExp('(?!admin)[a-z]+').test('admin')).toBe(false);
  });
});
