import { describe, expect, it } from 'vitest';
import { formatJson, formatText } from './report.js';
import type { CheckResult } from './result.js';

const ok: CheckResult = { name: 'control-plane-answers', group: 'control plane', status: 'ok', message: 'control plane answers at http://cp:15080 (Skein control plane 0.1.0)', hint: 'not shown' };
const nack: CheckResult = { name: 'proxies-converged', group: 'proxies', status: 'failure', message: 'config has not converged on snapshot 42: 1 sidecar NACKed', details: ['web-1 (web) NACKed snapshot 42: bad'], hint: 'fix it' };
const open: CheckResult = { name: 'intentions-default', group: 'config', status: 'warning', message: 'intentions allow by default', hint: 'deny' };

describe('formatText', () => {
  it('prints each group under its heading, marks, details and hints of warnings and failures, then the totals', () => {
    expect(formatText([ok, nack, open])).toBe(
      [
        'control plane', '-------------', '√ control plane answers at http://cp:15080 (Skein control plane 0.1.0)', '',
        'proxies', '-------', '× config has not converged on snapshot 42: 1 sidecar NACKed', '    web-1 (web) NACKed snapshot 42: bad', '    hint: fix it', '',
        'config', '------', '‼ intentions allow by default', '    hint: deny', '',
        'Status check results are × (1 failure, 1 warning)', '',
      ].join('\n'),
    );
    expect(formatText([ok]).endsWith('Status check results are √\n')).toBe(true);
    expect(formatText([ok, open]).endsWith('Status check results are √ (1 warning)\n')).toBe(true);
  });
});

describe('formatJson', () => {
  it('gives the overall status and totals with the checks', () => {
    expect(formatJson([ok, open])).toEqual({ status: 'warning', failures: 0, warnings: 1, checks: [ok, open] });
  });
});
