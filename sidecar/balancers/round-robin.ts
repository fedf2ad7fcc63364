/**
 * Round-robin balancing: endpoints in turn, from a random start so sidecars do not move in
 * step; the next endpoint of the best rank present (balancer.ts).
 */
import { EMPTY_PICKER, type BalancedEndpoint, type EjectedPredicate, type Picker } from './balancer.js';

class RoundRobinPicker<E extends BalancedEndpoint> implements Picker<E> {
  private next: number;

  constructor(
    private readonly endpoints: readonly E[],
    private readonly isEjected: EjectedPredicate,
    random: () => number,
  ) {
    this.next = Math.floor(random() * endpoints.length);
  }

  pick(avoid?: E): E | undefined {
    const endpoints = this.endpoints;
    const n = endpoints.length;
    let panic = -1;
    for (let i = 0; i < n; i++) {
      const at = this.next;
      const e = endpoints[at]!;
      this.next = at + 1 === n ? 0 : at + 1;
      if (e === avoid) continue;
      if (!this.isEjected(e.key)) return e;
      if (panic < 0) panic = at;
    }
    if (panic < 0) return avoid ?? endpoints[this.next]!;
    // Panic: the ejected endpoints take turns too.
    this.next = panic + 1 === n ? 0 : panic + 1;
    return endpoints[panic]!;
  }
}

export function roundRobinPicker<E extends BalancedEndpoint>(endpoints: readonly E[], isEjected: EjectedPredicate, random: () => number = Math.random): Picker<E> {
  if (endpoints.length === 0) return EMPTY_PICKER;
  return new RoundRobinPicker(endpoints, isEjected, random);
}
