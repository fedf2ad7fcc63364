/**
 * Weighted traffic split across subsets: a deterministic pick from a random number in [0, 1),
 * so tests and `explain` can drive it. Zero weights are kept (for display) but never picked.
 */

/** The subset name that means "every endpoint of the service" (a rule without `split`). */
export const ALL_ENDPOINTS = '*';

export interface WeightedSplit {
  readonly subsets: readonly string[];
  readonly weights: readonly number[];
  /** Running sums of weights, for the pick. */
  readonly cumulative: readonly number[];
  readonly total: number;
}

export function compileSplit(split: Readonly<Record<string, number>> | undefined): WeightedSplit {
  const entries = split === undefined ? [[ALL_ENDPOINTS, 100] as const] : Object.entries(split);
  const subsets: string[] = [];
  const weights: number[] = [];
  const cumulative: number[] = [];
  let total = 0;
  for (const [subset, weight] of entries) {
    subsets.push(subset);
    weights.push(weight);
    total += weight;
    cumulative.push(total);
  }
  return { subsets, weights, cumulative, total };
}

/** The index of the subset a request with random number `random` ∈ [0, 1) goes to. */
export function pickSplit(split: WeightedSplit, random: number): number {
  const cumulative = split.cumulative;
  if (cumulative.length === 1) return 0;
  const point = random * split.total;
  for (let i = 0; i < cumulative.length; i++) if (point < cumulative[i]!) return i;
  return cumulative.length - 1;
}
