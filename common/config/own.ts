/**
 * A record's entry by a name that comes from outside: a service, subset or header name may be
 * `constructor` or `toString` (a DNS label, a subset name), which a plain object's lookup finds
 * on Object.prototype (`snapshot.routes.constructor` is the function Object). Only the record's
 * own entries count.
 */
export function ownEntry<V>(record: Readonly<Record<string, V>> | undefined, key: string): V | undefined {
  return record !== undefined && Object.hasOwn(record, key) ? record[key] : undefined;
}
