/** Round-robin balancing: endpoints in turn, from a random start so sidecars do not move in step. */
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
    for (let i = 0; i < n; i++) {
      const e = endpoints[this.next]!;
      this.next = this.next + 1 === n ? 0 : this.next + 1;
      if (!this.isEjected(e.key) && (e !== avoid || n === 1)) return e;
    }
    return avoid !== undefined && !this.isEjected(avoid.key) ? avoid : endpoints[this.next]!;
  }
}

export function roundRobinPicker<E extends BalancedEndpoint>(endpoints: readonly E[], isEjected: EjectedPredicate, random: () => number = Math.random): Picker<E> {
  if (endpoints.length === 0) return EMPTY_PICKER;
  return new RoundRobinPicker(endpoints, isEjected, random);
}
