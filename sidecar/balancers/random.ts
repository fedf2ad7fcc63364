/** Random balancing: a uniformly random endpoint of the best rank (balancer.ts). */
import { EMPTY_PICKER, randomByRank, type BalancedEndpoint, type EjectedPredicate, type Picker } from './balancer.js';

export function randomPicker<E extends BalancedEndpoint>(endpoints: readonly E[], isEjected: EjectedPredicate, random: () => number = Math.random): Picker<E> {
  if (endpoints.length === 0) return EMPTY_PICKER;
  if (endpoints.length === 1) {
    const only = endpoints[0]!;
    return { pick: () => only };
  }
  return {
    pick: (avoid) => randomByRank(endpoints, isEjected, random, avoid),
  };
}
