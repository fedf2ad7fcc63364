/**
 * Least-request balancing with the power of two choices (Envoy's default): two random
 * endpoints, the one with fewer requests in flight wins. Nearly as good as scanning all
 * endpoints, and it never herds every sidecar onto the same idle endpoint.
 */
import { EMPTY_PICKER, randomByRank, rank, type BalancedEndpoint, type EjectedPredicate, type Picker } from './balancer.js';

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
        const ra = rank(a, isEjected, avoid);
        const rb = rank(b, isEjected, avoid);
        if (ra !== rb) return ra < rb ? a : b;
        if (a.active !== b.active) return a.active < b.active ? a : b;
        return random() < 0.5 ? a : b;
      },
    };
  }
  return {
    pick(avoid) {
      // Both draws are of the best rank present, so they compete on requests in flight alone.
      const a = randomByRank(endpoints, isEjected, random, avoid);
      const b = randomByRank(endpoints, isEjected, random, avoid);
      return b.active < a.active ? b : a;
    },
  };
}
