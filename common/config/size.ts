/**
 * Sizes in flags and config are written with a unit ("64KiB", "10MiB", "1GB") or as plain
 * bytes, and carried as bytes inside the process. A bare prefix ("512k", "1m") is binary, as
 * nginx reads it, and so is a Kubernetes-style one ("1Mi").
 */
const KI = 1024;
const UNIT_BYTES: Record<string, number> = {
  '': 1,
  b: 1,
  ...binary('k', KI),
  ...binary('m', KI ** 2),
  ...binary('g', KI ** 3),
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
};

function binary(prefix: string, bytes: number): Record<string, number> {
  return { [prefix]: bytes, [`${prefix}i`]: bytes, [`${prefix}ib`]: bytes };
}
const SIZE = /^(\d+)\s*([a-z]*)$/i;

/** Parses a size to bytes; undefined when it is not one. */
export function parseSize(text: string): number | undefined {
  const m = SIZE.exec(text.trim());
  if (!m) return undefined;
  const unit = UNIT_BYTES[m[2]!.toLowerCase()];
  return unit === undefined ? undefined : Number(m[1]) * unit;
}

const BINARY_UNITS: readonly (readonly [string, number])[] = [['GiB', KI ** 3], ['MiB', KI ** 2], ['KiB', KI]];

/** A size as flags write it: in the largest binary unit that divides it ("64KiB"), else in bytes. */
export function formatSize(bytes: number): string {
  for (const [unit, size] of BINARY_UNITS) if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  return String(bytes);
}
