import { describe, expect, it } from 'vitest';
import { AdminApiError } from '../admin-client.js';
import { judgeAdminToken, judgeControlPlane } from './control-plane.js';

describe('judgeControlPlane', () => {
  it('names the URL and version that answered, or fails with why it did not', () => {
    expect(judgeControlPlane('http://cp:15080', { version: '0.1.0' })).toMatchObject({ status: 'ok', message: 'control plane answers at http://cp:15080 (Skein control plane 0.1.0)' });
    const down = judgeControlPlane('http://cp:15080', new AdminApiError(0, 'unreachable', 'cannot reach the control plane at http://cp:15080: ECONNREFUSED'));
    expect(down).toMatchObject({ status: 'failure', message: 'cannot reach the control plane at http://cp:15080: ECONNREFUSED' });
  });
});

describe('judgeAdminToken', () => {
  it('warns without a token, fails on a 401, is ok when the token check passed', () => {
    expect(judgeAdminToken(false, undefined).status).toBe('warning');
    expect(judgeAdminToken(true, undefined).status).toBe('ok');
    expect(judgeAdminToken(true, new AdminApiError(401, 'unauthorized', 'invalid admin token'))).toMatchObject({ status: 'failure', message: 'admin token refused: invalid admin token' });
    // Some other refusal (an older control plane without the route) says nothing of the token.
    expect(judgeAdminToken(true, new AdminApiError(404, 'not-found', 'no such endpoint: /api/v1/apply/check')).status).toBe('warning');
  });
});
