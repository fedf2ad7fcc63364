import { describe, expect, it } from 'vitest';
import { hiddenRules, inPrecedenceOrder, specificity, type IntentionPair } from './intention-precedence.js';

/** `'a>b'` → `{source: 'a', destination: 'b'}` */
const rules = (...pairs: string[]): IntentionPair[] =>
  pairs.map((pair) => {
    const [source, destination] = pair.split('>');
    return { source: source!, destination: destination! };
  });

describe('hiddenRules', () => {
  it('finds a repeat of a pair, hidden by the first of it', () => {
    expect(hiddenRules(rules('gateway>orders', 'users>orders', 'gateway>orders', 'gateway>orders'))).toEqual([
      { index: 2, hiddenBy: 0 },
      { index: 3, hiddenBy: 0 },
    ]);
  });

  it('finds a rule hidden by an earlier `a -> *`, `* -> b` or `* -> *`', () => {
    expect(hiddenRules(rules('gateway>*', 'gateway>orders'))).toEqual([{ index: 1, hiddenBy: 0 }]);
    expect(hiddenRules(rules('*>orders', 'gateway>orders'))).toEqual([{ index: 1, hiddenBy: 0 }]);
    expect(hiddenRules(rules('users>catalog', '*>*', 'gateway>orders', 'gateway>*', '*>orders', '*>*'))).toEqual([
      { index: 2, hiddenBy: 1 },
      { index: 3, hiddenBy: 1 },
      { index: 4, hiddenBy: 1 },
      { index: 5, hiddenBy: 1 },
    ]);
  });

  it('names the earliest of the rules that hide one', () => {
    expect(hiddenRules(rules('*>orders', 'gateway>*', 'gateway>orders'))).toEqual([{ index: 2, hiddenBy: 0 }]);
    expect(hiddenRules(rules('gateway>orders', 'gateway>*', 'gateway>orders'))).toEqual([{ index: 2, hiddenBy: 0 }]);
  });

  it('does not count a partial overlap: `a -> *` then `* -> b` each decide some calls', () => {
    expect(hiddenRules(rules('gateway>*', '*>orders'))).toEqual([]);
    expect(hiddenRules(rules('*>orders', 'gateway>*'))).toEqual([]);
    // A more general rule after a more specific one is not hidden either.
    expect(hiddenRules(rules('gateway>orders', 'gateway>*', '*>orders', '*>*'))).toEqual([]);
  });

  it('finds nothing among different pairs', () => {
    expect(hiddenRules(rules('gateway>orders', 'orders>gateway', 'gateway>catalog', 'users>orders'))).toEqual([]);
    expect(hiddenRules([])).toEqual([]);
  });
});

describe('inPrecedenceOrder', () => {
  it('puts exact pairs first, then rules with one `*`, then `* -> *`, equals keeping their order', () => {
    const stored = rules('*>*', 'gateway>*', 'users>orders', '*>catalog', 'gateway>orders');
    expect(stored.map(specificity)).toEqual([2, 1, 0, 1, 0]);
    expect(inPrecedenceOrder(stored)).toEqual(rules('users>orders', 'gateway>orders', 'gateway>*', '*>catalog', '*>*'));
    expect(stored[0]).toEqual({ source: '*', destination: '*' });
  });

  it('leaves nothing hidden but repeats of a pair', () => {
    const ordered = inPrecedenceOrder(rules('*>*', 'gateway>*', '*>orders', 'gateway>orders', 'gateway>orders'));
    expect(hiddenRules(ordered)).toEqual([{ index: 1, hiddenBy: 0 }]);
    expect(ordered[1]).toEqual({ source: 'gateway', destination: 'orders' });
  });
});
