/**
 * The open streams of one mux connection, by id: an open-addressing hash table over two
 * arrays allocated once (linear probing, deletion by backward shift, so no tombstones).
 *
 * Why not a Map: V8 rehashes a Map's table every few dozen set/delete pairs and keeps the old
 * table, entries and all, linked to the new one (for iterators that were walking it). A
 * connection sets and deletes a stream per request, so once one of those tables lives through
 * two scavenges (an idle spell does it), it is promoted, and from then on each dead table in
 * the old generation holds the next young one alive, and with it every stream it held and the
 * request each stream was for. That chain never breaks under load: a quarter of everything
 * the request path allocated survived each scavenge and was promoted, full GCs ran three times
 * a second, and a sidecar that had been idle for 8 s before its first requests served 15k
 * rather than 19.5k a second for as long as it ran (bench/HISTORY.md, "The idle start and
 * V8's Map"). Here a stream costs no allocation, and a deleted slot holds nothing.
 */
const EMPTY = -1;
/** Fibonacci hashing: sequential stream ids land far apart. */
const GOLDEN = 0x9e3779b1;

export class StreamTable<T> {
  /** Stream ids by slot (any u32), EMPTY where none. */
  private ids: Float64Array;
  private slots: (T | undefined)[];
  private shift: number;
  private count = 0;

  /** `capacity`: a power of two; the table doubles when it is half full. */
  constructor(capacity = 32) {
    this.ids = new Float64Array(capacity).fill(EMPTY);
    this.slots = new Array<T | undefined>(capacity).fill(undefined);
    this.shift = 32 - Math.log2(capacity);
  }

  get size(): number {
    return this.count;
  }

  get(id: number): T | undefined {
    const i = this.find(id);
    return i < 0 ? undefined : this.slots[i];
  }

  has(id: number): boolean {
    return this.find(id) >= 0;
  }

  set(id: number, value: T): void {
    const found = this.find(id);
    if (found >= 0) {
      this.slots[found] = value;
      return;
    }
    if ((this.count + 1) * 2 > this.ids.length) this.grow();
    this.insert(id, value);
    this.count++;
  }

  delete(id: number): boolean {
    let hole = this.find(id);
    if (hole < 0) return false;
    const ids = this.ids;
    const mask = ids.length - 1;
    // Backward shift: an entry after the hole whose home slot is not between the hole and it moves into the hole.
    for (let j = (hole + 1) & mask; ids[j] !== EMPTY; j = (j + 1) & mask) {
      const home = this.home(ids[j]!);
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        ids[hole] = ids[j]!;
        this.slots[hole] = this.slots[j];
        hole = j;
      }
    }
    ids[hole] = EMPTY;
    this.slots[hole] = undefined;
    this.count--;
    return true;
  }

  /** The streams open now, in no particular order. */
  values(): T[] {
    const out: T[] = [];
    for (let i = 0; i < this.ids.length; i++) if (this.ids[i] !== EMPTY) out.push(this.slots[i]!);
    return out;
  }

  clear(): void {
    this.ids.fill(EMPTY);
    this.slots.fill(undefined);
    this.count = 0;
  }

  private home(id: number): number {
    return Math.imul(id, GOLDEN) >>> this.shift;
  }

  private find(id: number): number {
    const ids = this.ids;
    const mask = ids.length - 1;
    for (let i = this.home(id); ; i = (i + 1) & mask) {
      const at = ids[i]!;
      if (at === id) return i;
      if (at === EMPTY) return -1;
    }
  }

  private insert(id: number, value: T): void {
    const ids = this.ids;
    const mask = ids.length - 1;
    let i = this.home(id);
    while (ids[i] !== EMPTY) i = (i + 1) & mask;
    ids[i] = id;
    this.slots[i] = value;
  }

  private grow(): void {
    const ids = this.ids;
    const slots = this.slots;
    this.ids = new Float64Array(ids.length * 2).fill(EMPTY);
    this.slots = new Array<T | undefined>(ids.length * 2).fill(undefined);
    this.shift--;
    for (let i = 0; i < ids.length; i++) if (ids[i] !== EMPTY) this.insert(ids[i]!, slots[i]!);
  }
}
