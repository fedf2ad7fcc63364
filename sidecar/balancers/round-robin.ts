/**
 * Round-robin balancing: endpoints in turn, from a random start so sidecars do not move in
 * step; the next endpoint of the best rank present (balancer.ts).
 */
import { EMPTY_PICKER, type BalancedEndpoint, type EjectedPredicate, type Picker } from './balancer.js';

class RoundRobinPicker<E extends BalancedEndpoint> implements Picker<E> {
  private next: number;
  /** Panic picks' own turn (balancer.ts): on `next`, which first tries move, every one would land on the same ejected endpoint. */
  private nextPanic: number;

  constructor(
    private readonly endpoints: readonly E[],
    private readonly isEjected: EjectedPredicate,
    random: () => number,
  ) {
    this.next = Math.floor(random() * endpoints.length);
    this.nextPanic = this.next;
  }

  pick(avoid?: E): E | undefined {
    const endpoints = this.endpoints;
    const n = endpoints.length;
    for (let i = 0; i < n; i++) {
      const at = this.next;
      this.next = at + 1 === n ? 0 : at + 1;
      const e = endpoints[at]!;
      if (e !== avoid && !this.isEjected(e.key)) return e;
    }
    // None of the best rank: every endpoint but `avoid` is ejected, and they take turns.
    for (let i = 0; i < n; i++) {
      const at = this.nextPanic;
      this.nextPanic = at + 1 === n ? 0 : at + 1;
      if (endpoints[at] !== avoid) return endpoints[at]!;
    }
    return avoid ?? endpoints[this.next]!;
  }
}

export function roundRobinPicker<E extends BalancedEndpoint>(endpoints: readonly E[], isEjected: EjectedPredicate, random: () => number = Math.random): Picker<E> {
  if (endpoints.length === 0) return EMPTY_PICKER;
  return new RoundRobinPicker(endpoints, isEjected, random);
}
