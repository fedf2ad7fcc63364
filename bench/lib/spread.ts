/** How much a benchmark's headline figures moved over repeated runs of one command. */

export type Figures = Readonly<Record<string, number>>;

function median(sorted: readonly number[]): number {
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function format(value: number): string {
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** One markdown list line per figure, `label: min – max (median m)`, over the runs that have it. */
export function describeSpread(runs: readonly Figures[]): string {
  const labels = [...new Set(runs.flatMap((r) => Object.keys(r)))];
  const lines = labels.map((label) => {
    const values = runs.map((r) => r[label]).filter((v): v is number => v !== undefined && Number.isFinite(v)).sort((a, b) => a - b);
    if (values.length === 0) return `- ${label}: no value`;
    const range = values.length === 1 ? format(values[0]!) : `${format(values[0]!)} – ${format(values[values.length - 1]!)} (median ${format(median(values))})`;
    return `- ${label}: ${range}${values.length < runs.length ? ` (in ${values.length} of ${runs.length} runs)` : ''}`;
  });
  return [`Across ${runs.length} runs of this command:`, '', ...lines].join('\n');
}
