/**
 * `skein check`'s output: the checks under their group's heading, each with √ (ok), ‼ (warning)
 * or × (failure) as `linkerd check` marks them, the sidecars or services it is about and a hint,
 * then one line of totals; or all of it as JSON.
 */
import { CHECK_GROUPS, count, type CheckResult, type CheckStatus } from './result.js';

const MARK: Readonly<Record<CheckStatus, string>> = { ok: '√', warning: '‼', failure: '×' };

export function summary(results: readonly CheckResult[]): { status: CheckStatus; failures: number; warnings: number } {
  const failures = results.filter((r) => r.status === 'failure').length;
  const warnings = results.filter((r) => r.status === 'warning').length;
  return { status: failures > 0 ? 'failure' : warnings > 0 ? 'warning' : 'ok', failures, warnings };
}

export function formatText(results: readonly CheckResult[]): string {
  const lines: string[] = [];
  for (const group of CHECK_GROUPS) {
    const mine = results.filter((r) => r.group === group);
    if (mine.length === 0) continue;
    lines.push(group, '-'.repeat(group.length));
    for (const r of mine) {
      lines.push(`${MARK[r.status]} ${r.message}`, ...(r.details ?? []).map((d) => `    ${d}`));
      if (r.hint && r.status !== 'ok') lines.push(`    hint: ${r.hint}`);
    }
    lines.push('');
  }
  const { failures, warnings } = summary(results);
  const totals = [failures > 0 && count(failures, 'failure'), warnings > 0 && count(warnings, 'warning')].filter(Boolean).join(', ');
  lines.push(`Status check results are ${failures > 0 ? MARK.failure : MARK.ok}${totals ? ` (${totals})` : ''}`);
  return `${lines.join('\n')}\n`;
}

export function formatJson(results: readonly CheckResult[]): unknown {
  return { ...summary(results), checks: results };
}
