import { describe, expect, it } from 'vitest';
import { backtrackRisk } from './regex-safety.js';

/** Time of one whole-value match of `source` against `input`, in ms (bounded inputs only). */
function matchMs(source: string, input: string): number {
  const re = new RegExp(`^(?:${source})$`);
  const start = performance.now();
  re.test(input);
  return performance.now() - start;
}

describe('backtrackRisk', () => {
  it('refuses nested quantifiers, naming the repeated group and the repeat inside it', () => {
    expect(backtrackRisk('/api/(\\w+/?)+')).toEqual({ kind: 'nested quantifier', message: '"(\\w+/?)+" repeats a group that holds the repeat "\\w+"' });
    for (const source of ['(a*)*', '(a+)+b', '(?:x[0-9]{1,3})+', '/((ab)*c)*', '(a+){2,}', '(?:[a-z]+-?)*$', '((?:a|b)+c)+', '(\\d+)*?x']) {
      expect(backtrackRisk(source)?.kind, source).toBe('nested quantifier');
    }
  });

  it('refuses repeated alternatives that can start with the same character', () => {
    expect(backtrackRisk('(a|ab)+')).toEqual({ kind: 'overlapping alternatives', message: '"(a|ab)+" repeats the alternation "a|ab", whose branches can start with the same character' });
    for (const source of ['(\\w|_)*', '(?:[a-f]|[0-9a-c])+x', '(.|a)*', '(x(?:a|a))*y', '(\\s|\\u00a0)+', '([^/]|-)+']) {
      expect(backtrackRisk(source)?.kind, source).toBe('overlapping alternatives');
    }
  });

  it('refuses adjacent unbounded repeats that can match the same character (polynomial backtracking)', () => {
    expect(backtrackRisk('^/a*a*a*a*a*a*b$')).toEqual({ kind: 'adjacent repeats', message: '"a*" and "a*" repeat without bound, one after the other, and can match the same characters' });
    for (const source of ['a*a*', '\\w+\\w*', '.*.*', '[a-z]+a+', '/x/.*b?.+', '[0-9]{2,}\\d+', '(?:ab)+b*', '\\S+[^/]*$']) {
      expect(backtrackRisk(source)?.kind, source).toBe('adjacent repeats');
    }
  });

  it('accepts the usual route patterns, fixed counts, optional groups and disjoint alternatives', () => {
    for (const source of [
      '/a/.*',
      '^/[a-z]+/[0-9]+$',
      '[a-z]+[0-9]*',
      'a*b+a*',
      '\\d+\\.\\d+',
      '^/api/v[0-9]+/.*',
      '/products/[0-9]+',
      '/items/[0-9]+',
      '/api/[\\w/]+',
      '/(users|orders)/[0-9]+',
      '(?:/[a-z]+)?/x',
      '(\\d{3}-)+\\d{4}',
      '(?:a|b|c)+',
      '(?:\\w|-)+',
      '[{}]+{',
      'a{2,3}b+c*',
      '(?=/api)/.*',
      '\\bfoo\\b',
      '(a)\\1+',
      '[\\]a-]+',
      'v(1|2)\\.[0-9]+',
    ]) {
      expect(backtrackRisk(source), source).toBeUndefined();
    }
  });

  it('what it refuses does blow up, and the rewrite it suggests does not', () => {
    // 24 characters are enough to show it without stalling the test: tens of ms, ×2 per character.
    const evil = `/api/${'a'.repeat(24)}!`;
    expect(matchMs('/api/(\\w+/?)+', evil)).toBeGreaterThan(matchMs('/api/[\\w/]+', evil) * 20);
    expect(matchMs('/api/[\\w/]+', `/api/${'a'.repeat(100_000)}!`)).toBeLessThan(50);
    // Polynomial: six adjacent a* against 40 a's is already far slower than the rewrite a*b.
    const many = `/${'a'.repeat(40)}`;
    expect(matchMs('^/a*a*a*a*a*a*b$', many)).toBeGreaterThan(matchMs('^/a*b$', many) * 20);
  });
});
