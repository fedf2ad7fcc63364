/**
 * Least-request balancing with the power of two choices (Envoy's default): two random
 * endpoints, the one with fewer requests in flight wins. Nearly as good as scanning all
 * endpoints, and it never herds every sidecar onto the same idle endpoint.
 */
import { EMPTY_PICKER, randomHealthy, randomHealthyExcept, type BalancedEndpoint, type EjectedPredicate, type Picker } from './balancer.js';

export function leastRequestPicker<E extends BalancedEndpoint>(endpoints: readonly E[], isEjected: EjectedPredicate, random: () => number = Math.random): Picker<E> {
  const n = endpoints.length;
  if (n === 0) return EMPTY_PICKER;
  if (n === 1) {
    const only = endpoints[0]!;
    return { pick: () => only };
  }
  if (n === 2) {
    const [a, b] = endpoints as [E, E];
    return {
      pick(avoid) {
        if (isEjected(a.key) || avoid === a) return isEjected(b.key) ? (a.active <= b.active ? a : b) : b;
        if (isEjected(b.key) || avoid === b) return a;
        if (a.active !== b.active) return a.active < b.active ? a : b;
        return random() < 0.5 ? a : b;
      },
    };
  }
  return {
    pick(avoid) {
      const a = randomHealthy(endpoints, isEjected, random);
      const b = randomHealthy(endpoints, isEjected, random);
      if (avoid === undefined || (a !== avoid && b !== avoid)) return b.active < a.active ? b : a;
      const other = a === avoid ? b : a;
      return other !== avoid ? other : randomHealthyExcept(endpoints, isEjected, random, avoid);
    },
  };
}
