/**
 * Route regexes run on every request they are tried on, against a path or header value the
 * client chose, on node's backtracking engine. regex-safety.ts refuses the shapes that
 * backtrack exponentially where config enters; what it cannot see by shape, polynomial
 * backtracking through a required character (`^/x.*a.*a.*a.*b$` took 2.5 s on a
 * 300-character path), is bounded here at run time instead. With
 * `--enable-experimental-regexp-engine-on-excessive-backtracks`, V8 finishes a match that
 * has backtracked 50,000 times on its linear-time engine (what Envoy's RE2 always uses):
 * the same answer, in time linear in the input (a 20,000-character path in milliseconds).
 *
 * The fallback is fixed when a regex is compiled, so the flag is set as this module loads,
 * before any route regex is compiled; it is process-wide, changes no result, and costs
 * nothing until a match backtracks that far. It covers what the linear engine can run: not
 * backreferences, lookaround, or counted repeats above 16 (`[0-9]{1,20}`), which stay on
 * the backtracking engine with only the shape check.
 */
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');

/** A route regex matching the whole value (as Envoy's safe_regex does). */
export function wholeValueRegExp(source: string): RegExp {
  return new RegExp(`^(?:${source})$`);
}
