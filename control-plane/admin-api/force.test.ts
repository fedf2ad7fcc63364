import { describe, expect, it } from 'vitest';
import { ApiError } from './errors.js';
import { forceRequested } from './force.js';

/** What `forceRequested` makes of `search`: whether to force, or the refusal's status, code and message. */
function force(search: string): unknown {
  try {
    return forceRequested(new URLSearchParams(search));
  } catch (err) {
    return err instanceof ApiError ? [err.status, err.code, err.message] : err;
  }
}

describe('forceRequested', () => {
  it('takes true, 1 or a bare flag as force, and absent, false or 0 as none', () => {
    for (const search of ['force=true', 'force=1', 'force', 'force=']) expect(force(search), search).toBe(true);
    for (const search of ['', 'force=false', 'force=0']) expect(force(search), search).toBe(false);
    expect(force('force=maybe')).toEqual([400, 'bad-request', 'force must be true or false (got "maybe")']);
  });

  it('refuses force given twice rather than taking the first: a write that aborts a rollout, or not, must be asked once', () => {
    expect(force('force=false&force=true')).toEqual([400, 'bad-request', 'force must be given once (got "false", "true")']);
    expect(force('force=true&force=true')).toEqual([400, 'bad-request', 'force must be given once (got "true", "true")']);
  });
});
