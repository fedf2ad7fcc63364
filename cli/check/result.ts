/**
 * One finding of `skein check`: a named check in a group, judged ok, warning (the mesh works,
 * but something wants a look) or failure (something is broken now; the command exits 1), with
 * a one-line message, the sidecars or services it is about, and what to do.
 */
export type CheckStatus = 'ok' | 'warning' | 'failure';

/** The groups, in the order they are run and printed. */
export const CHECK_GROUPS = ['control plane', 'certificates', 'proxies', 'config'] as const;

export type CheckGroup = (typeof CHECK_GROUPS)[number];

export interface CheckResult {
  /** Stable, for scripts reading `-o json`, e.g. `proxies-converged`. */
  readonly name: string;
  readonly group: CheckGroup;
  readonly status: CheckStatus;
  readonly message: string;
  /** One line each: the sidecars, services or rollouts the message is about. */
  readonly details?: readonly string[];
  /** What to do about a warning or failure. */
  readonly hint?: string;
}

/** `n thing` or `n things`. */
export function count(n: number, thing: string): string {
  return `${n} ${thing}${n === 1 ? '' : 's'}`;
}

/** A read the checks of `group` needed that failed: each check that depended on it fails, saying why. */
export function unreadable(name: string, group: CheckGroup, what: string, err: unknown): CheckResult {
  return { name, group, status: 'failure', message: `cannot read ${what}: ${(err as Error).message}` };
}
