/** Parsers of flag values shared by several commands; a bad value is a usage error (exit 2). */
import { InvalidArgumentError } from 'commander';
import { parseDuration } from '../common/config/duration.js';

/** A duration flag ("250ms", "10s", "1m30s") in milliseconds. */
export function parseDurationFlag(value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined) throw new InvalidArgumentError(`not a duration: ${value} (use e.g. 10s)`);
  return ms;
}
