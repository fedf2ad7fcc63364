import { describe, expect, it } from 'vitest';
import { intentions } from '../../common/config/schema.js';
import { compileIntentions } from './intentions.js';

const compile = (input: unknown) => compileIntentions(intentions.parse(input));

describe('compileIntentions', () => {
  it('allows everything when the snapshot has no intentions', () => {
    expect(compileIntentions(undefined)('anyone', 'orders').allowed).toBe(true);
  });

  it('takes the first matching rule, not the most specific one', () => {
    const evaluate = compile({
      defaultAction: 'allow',
      rules: [
        { source: '*', destination: 'payments', action: 'deny' },
        { source: 'orders', destination: 'payments', action: 'allow' },
      ],
    });
    expect(evaluate('orders', 'payments')).toEqual({ allowed: false, rule: 0 });
    expect(evaluate('orders', 'catalog')).toEqual({ allowed: true });
  });

  it('matches wildcards on either side and falls back to the default action', () => {
    const evaluate = compile({
      rules: [
        { source: 'gateway', destination: '*', action: 'allow' },
        { source: '*', destination: 'catalog', action: 'allow' },
      ],
    });
    expect(evaluate('gateway', 'orders')).toEqual({ allowed: true, rule: 0 });
    expect(evaluate('orders', 'catalog')).toEqual({ allowed: true, rule: 1 });
    expect(evaluate('orders', 'payments')).toEqual({ allowed: false });
  });

  it('gives a caller without an identity only the default action, even against `*` rules', () => {
    const evaluate = compile({ defaultAction: 'deny', rules: [{ source: '*', destination: '*', action: 'allow' }] });
    expect(evaluate(undefined, 'orders').allowed).toBe(false);
    expect(evaluate('users', 'orders').allowed).toBe(true);
  });

  it('answers the same after memoising a decision', () => {
    const evaluate = compile({ defaultAction: 'deny', rules: [{ source: 'a', destination: 'b', action: 'allow' }] });
    for (let i = 0; i < 3; i++) {
      expect(evaluate('a', 'b').allowed).toBe(true);
      expect(evaluate('b', 'a').allowed).toBe(false);
    }
  });
});
