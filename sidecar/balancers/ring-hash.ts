/**
 * Consistent hashing on a ring (Karger et al.; points laid out as ketama does), for session
 * affinity: requests whose hash key (the policy's `hashOn`: a header, cookie or query
 * parameter, hash-key.ts) is the same go to the same endpoint while it stays in the set, and a
 * change of the set moves only the keys of the endpoints that came or went, about 1/n of them.
 * It is Envoy's `RING_HASH`, which Istio's `consistentHash` and Consul's service-resolver
 * `ring_hash` configure.
 *
 * Each endpoint owns points placed by the MD5 of its key (`address:port`), so every sidecar
 * builds the same ring from the same endpoints, in whatever order discovery lists them. A key
 * goes to the owner of the first point at or after its hash; ejected endpoints and `avoid`
 * (balancer.ts's ranks) are passed over clockwise, so an ejected endpoint's keys, and a
 * retry's next try, land on its neighbour, the same one for every request of that key; each
 * further try goes on past the endpoint the one before failed on, to the next endpoint on the
 * ring (as Envoy's ring with its previous-hosts retry predicate). A request without a key (the
 * header absent) is balanced at random, as Envoy does.
 */
import { hash as digest } from 'node:crypto';
import { EMPTY_PICKER, randomByRank, type BalancedEndpoint, type EjectedPredicate, type Picker } from './balancer.js';

/** About this many points in all; each endpoint gets at least MIN_POINTS and at most MAX_POINTS (ketama's 160), so small sets balance well and large ones build fast. */
const RING_POINTS = 16_384;
const MIN_POINTS = 8;
const MAX_POINTS = 160;

/** The 32-bit hash a key is placed by: the first four bytes of its MD5, as a ring point's. */
export function ringHash(key: string): number {
  return digest('md5', key, 'buffer').readUInt32BE(0);
}

/**
 * Each endpoint's points, as many as the largest ring it was placed on took (a smaller one takes
 * their first ones). Every reload and endpoint change builds the rings again, and a snapshot
 * changed anywhere in the mesh rebuilds every service; discovery hands each build the same
 * endpoint objects, so only the new ones are hashed (1000 endpoints: 5000 MD5s, ~15 ms, a build).
 */
const pointsOf = new WeakMap<BalancedEndpoint, Uint32Array>();

function endpointPoints(e: BalancedEndpoint, count: number): Uint32Array {
  const known = pointsOf.get(e);
  if (known !== undefined && known.length >= count) return known;
  const points = new Uint32Array(count);
  // Each digest gives four points.
  for (let d = 0; d < count / 4; d++) {
    const bytes = digest('md5', `${e.key}-${d}`, 'buffer');
    for (let p = 0; p < 4; p++) points[d * 4 + p] = bytes.readUInt32BE(p * 4);
  }
  pointsOf.set(e, points);
  return points;
}

class RingHashPicker<E extends BalancedEndpoint> implements Picker<E> {
  /** Ascending point hashes, and parallel to them the index of each point's endpoint. */
  private readonly points: Uint32Array;
  private readonly owners: Uint32Array;
  /** Per endpoint, the pick during which it was last judged (a stamp, so a walk allocates nothing). */
  private readonly seen: Uint32Array;
  private walk = 0;

  constructor(
    private readonly endpoints: readonly E[],
    private readonly isEjected: EjectedPredicate,
    private readonly random: () => number,
  ) {
    const n = endpoints.length;
    // A multiple of four: each digest gives four points.
    const perEndpoint = Math.ceil(Math.min(MAX_POINTS, Math.max(MIN_POINTS, RING_POINTS / n)) / 4) * 4;
    const total = n * perEndpoint;
    const hashes = new Uint32Array(total);
    const ownerOf = new Uint32Array(total);
    endpoints.forEach((e, owner) => {
      hashes.set(endpointPoints(e, perEndpoint).subarray(0, perEndpoint), owner * perEndpoint);
      ownerOf.fill(owner, owner * perEndpoint, (owner + 1) * perEndpoint);
    });
    // Point indices in ring order. Ties (two endpoints on one point) go to the lower key, so
    // the order of the list does not decide them.
    const order = new Uint32Array(total);
    for (let i = 0; i < total; i++) order[i] = i;
    order.sort((a, b) => hashes[a]! - hashes[b]! || (endpoints[ownerOf[a]!]!.key < endpoints[ownerOf[b]!]!.key ? -1 : 1));
    this.points = new Uint32Array(total);
    this.owners = new Uint32Array(total);
    for (let i = 0; i < total; i++) {
      this.points[i] = hashes[order[i]!]!;
      this.owners[i] = ownerOf[order[i]!]!;
    }
    this.seen = new Uint32Array(n);
  }

  pick(avoid?: E, hash?: number): E | undefined {
    if (hash === undefined) return randomByRank(this.endpoints, this.isEjected, this.random, avoid);
    const { points, owners, endpoints, seen } = this;
    const total = points.length;
    // A new stamp per walk; on wrapping, the stale stamps are cleared once.
    if (++this.walk === 0xffffffff) {
      seen.fill(0);
      this.walk = 1;
    }
    const stamp = this.walk;
    let judged = 0;
    // A retry goes on from `avoid`, its last try's endpoint, and comes round to the endpoints
    // before it last: started from the key's owner, every other try would go back to the owner
    // (the last try's is all a retry avoids), and a third endpoint would never be tried.
    let pastAvoid = avoid === undefined;
    let panic: E | undefined;
    let beforeAvoid: E | undefined;
    let panicBeforeAvoid: E | undefined;
    for (let i = firstAtOrAfter(points, hash), step = 0; step < total && judged < endpoints.length; step++, i = i + 1 === total ? 0 : i + 1) {
      const owner = owners[i]!;
      if (seen[owner] === stamp) continue;
      seen[owner] = stamp;
      judged++;
      const e = endpoints[owner]!;
      if (e === avoid) {
        pastAvoid = true;
        continue;
      }
      const ejected = this.isEjected(e.key);
      if (pastAvoid) {
        if (!ejected) return e;
        panic ??= e;
      } else if (ejected) panicBeforeAvoid ??= e;
      else beforeAvoid ??= e;
    }
    return beforeAvoid ?? panic ?? panicBeforeAvoid ?? avoid;
  }
}

/** Index of the first point at or after `hash`, wrapping to 0 past the last. */
function firstAtOrAfter(points: Uint32Array, hash: number): number {
  let lo = 0;
  let hi = points.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (points[mid]! < hash) lo = mid + 1;
    else hi = mid;
  }
  return lo === points.length ? 0 : lo;
}

export function ringHashPicker<E extends BalancedEndpoint>(endpoints: readonly E[], isEjected: EjectedPredicate, random: () => number = Math.random): Picker<E> {
  if (endpoints.length === 0) return EMPTY_PICKER;
  return new RingHashPicker(endpoints, isEjected, random);
}
