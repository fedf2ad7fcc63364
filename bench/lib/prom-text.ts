/** Reading counters out of Prometheus text exposition, to check what a proxy says it did. */

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Sums the samples of `name` whose labels include `match`, grouped by the value of label `by`. */
export function sumBy(text: string, name: string, match: Readonly<Record<string, string>>, by: string): Map<string, number> {
  const totals = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = SAMPLE.exec(line);
    if (!m || m[1] !== name) continue;
    const labels = new Map([...(m[2] ?? '').matchAll(LABEL)].map((l) => [l[1]!, l[2]!]));
    if (Object.entries(match).some(([k, v]) => labels.get(k) !== v)) continue;
    const key = labels.get(by) ?? '';
    totals.set(key, (totals.get(key) ?? 0) + Number(m[3]));
  }
  return totals;
}
