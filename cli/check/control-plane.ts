/** `skein check`'s control plane group: the admin API answers as a Skein control plane, and it takes the admin token. */
import type { AdminApiError } from '../admin-client.js';
import type { CheckResult } from './result.js';

/**
 * `answer`: the version its API description names, or why it could not be read. The admin
 * client's own checks say what answered instead (a sidecar's admin port, another server, nothing).
 */
export function judgeControlPlane(url: string, answer: { version: string } | AdminApiError): CheckResult {
  const base = { name: 'control-plane-answers', group: 'control plane' } as const;
  if ('version' in answer) return { ...base, status: 'ok', message: `control plane answers at ${url} (Skein control plane ${answer.version})` };
  return { ...base, status: 'failure', message: answer.message, hint: `skein check reads the mesh from the control plane's admin API at ${url}: nothing else was checked` };
}

/**
 * Reads need no token, so whether writes (`skein split`, `apply`, `intention`, …) will be taken
 * is told by a write that changes nothing: `refusal` is the error of that request, undefined
 * when it passed the token check.
 */
export function judgeAdminToken(tokenSet: boolean, refusal: AdminApiError | undefined): CheckResult {
  const base = { name: 'admin-token', group: 'control plane' } as const;
  if (!tokenSet) {
    return { ...base, status: 'warning', message: 'SKEIN_ADMIN_TOKEN is not set: reads work without it, writes (skein split, apply, intention, canary, token, ca rotate) are refused', hint: "set SKEIN_ADMIN_TOKEN to the control plane's admin token (<data-dir>/admin-token)" };
  }
  if (refusal === undefined) return { ...base, status: 'ok', message: 'admin token accepted for writes' };
  if (refusal.status === 401) return { ...base, status: 'failure', message: `admin token refused: ${refusal.message}`, hint: "SKEIN_ADMIN_TOKEN must hold this control plane's admin token (<data-dir>/admin-token)" };
  return { ...base, status: 'warning', message: `cannot tell whether the admin token is accepted: ${refusal.message}` };
}
