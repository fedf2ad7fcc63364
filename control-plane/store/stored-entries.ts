/**
 * Entries read back from the store are checked against their schema where they become typed
 * values again, as every write was checked on its way in: a hand-edited store.json entry or
 * Consul KV pair is refused, naming its key, and left in place for the operator to fix.
 * Refusing loses nothing, where skipping the entry would silently fall back to defaults.
 */
import type { ZodTypeAny } from 'zod';
import { zodProblems } from '../../common/config/parse.js';
import { NotJson, type StoreEntry } from './store.js';

/** Stored entries that fail validation; the store is left as it is for the operator to fix. */
export class StoredConfigError extends Error {
  override name = 'StoredConfigError';
  constructor(
    readonly location: string,
    readonly problems: readonly string[],
    /** What happens to them, e.g. `not published`. */
    consequence = 'not published',
  ) {
    super(`invalid config in the store (${location}), ${consequence}: ${problems.join('; ')}; fix or delete these entries there (nothing was changed)`);
  }
}

/**
 * The problems of one entry, each prefixed with its key: first `keyProblems` (what is wrong
 * with the key itself, e.g. a name that is not a service name), then the value's against
 * `schema`. Empty when the entry is good.
 */
export function entryProblems(entry: StoreEntry, schema: ZodTypeAny, keyProblems: readonly string[] = []): string[] {
  const valueProblems = (): string[] => {
    if (entry.value instanceof NotJson) return [`not JSON (${entry.value.reason})`];
    const value = schema.safeParse(entry.value);
    return value.success ? [] : zodProblems(value.error);
  };
  return [...keyProblems, ...valueProblems()].map((problem) => `${entry.key}: ${problem}`);
}

/**
 * Waits for every check and throws one StoredConfigError with all the problems they found,
 * so a single refused start names every bad key; any other failure is thrown as it is.
 */
export async function checkAll(location: string, checks: readonly Promise<unknown>[], consequence: string): Promise<void> {
  const problems: string[] = [];
  for (const result of await Promise.allSettled(checks)) {
    if (result.status === 'fulfilled') continue;
    if (!(result.reason instanceof StoredConfigError)) throw result.reason;
    problems.push(...result.reason.problems);
  }
  if (problems.length > 0) throw new StoredConfigError(location, problems, consequence);
}
