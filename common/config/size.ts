/**
 * Sizes in flags and config are written with a unit ("64KiB", "10MiB", "1GB") or as plain
 * bytes, and carried as bytes inside the process.
 */
const UNIT_BYTES: Record<string, number> = { '': 1, b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, kb: 1000, mb: 1000 ** 2, gb: 1000 ** 3 };
const SIZE = /^(\d+)\s*([a-z]*)$/i;

/** Parses a size to bytes; undefined when it is not one. */
export function parseSize(text: string): number | undefined {
  const m = SIZE.exec(text.trim());
  if (!m) return undefined;
  const unit = UNIT_BYTES[m[2]!.toLowerCase()];
  return unit === undefined ? undefined : Number(m[1]) * unit;
}
