/** Random balancing: a uniformly random endpoint that is not ejected. */
import { EMPTY_PICKER, randomHealthy, randomHealthyExcept, type BalancedEndpoint, type EjectedPredicate, type Picker } from './balancer.js';

export function randomPicker<E extends BalancedEndpoint>(endpoints: readonly E[], isEjected: EjectedPredicate, random: () => number = Math.random): Picker<E> {
  if (endpoints.length === 0) return EMPTY_PICKER;
  if (endpoints.length === 1) {
    const only = endpoints[0]!;
    return { pick: () => only };
  }
  return {
    pick(avoid) {
      const e = randomHealthy(endpoints, isEjected, random);
      return e === avoid ? randomHealthyExcept(endpoints, isEjected, random, avoid) : e;
    },
  };
}
