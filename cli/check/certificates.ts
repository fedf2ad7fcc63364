/** `skein check`'s certificates group, judged from `GET /api/v1/ca`: the root's lifetime and any rotation in progress. */
import type { CaView } from '../answers.js';
import { count, type CheckResult } from './result.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/** A root with less than this left is a warning: time to rotate it before leaves stop verifying. */
export const ROOT_EXPIRY_WARNING_MS = 30 * DAY_MS;

const ROTATE = 'rotate the root: skein ca rotate (see "Identity and authorization" in the README)';

/**
 * The signing root (the one that issues leaves now); the other roots of the bundle are on their
 * way out of a rotation, which the rotation check reports. Without a signing root flagged, the
 * root that ends first is judged.
 */
export function judgeRoot(ca: CaView, now: number): CheckResult {
  const base = { name: 'ca-root', group: 'certificates' } as const;
  const byEnd = [...ca.roots].sort((a, b) => Date.parse(a.notAfter) - Date.parse(b.notAfter));
  const root = ca.roots.find((r) => r.signing) ?? byEnd[0];
  if (!root) return { ...base, status: 'failure', message: `the CA of ${ca.trustDomain} has no root in its trust bundle`, hint: 'see skein ca status and the control plane\'s log' };
  const left = Date.parse(root.notAfter) - now;
  const which = `CA root ${root.fingerprint.slice(0, 23)}… of ${ca.trustDomain}`;
  if (left <= 0) return { ...base, status: 'failure', message: `${which} expired at ${root.notAfter}: leaves it issued no longer verify`, hint: ROTATE };
  const days = Math.floor(left / DAY_MS);
  if (left < ROOT_EXPIRY_WARNING_MS) return { ...base, status: 'warning', message: `${which} expires at ${root.notAfter}, in ${days} days`, hint: ROTATE };
  return { ...base, status: 'ok', message: `${which} valid until ${root.notAfter} (${days} days)` };
}

/** A rotation in progress is a warning: it steps on only once every sidecar it waits for runs the new bundle or leaf. */
export function judgeRotation(ca: CaView): CheckResult {
  const base = { name: 'ca-rotation', group: 'certificates' } as const;
  const { rotating, phase, waitingFor, settlingUntil } = ca.rotation;
  if (!rotating) return { ...base, status: 'ok', message: 'no root rotation in progress' };
  const settling = settlingUntil ? `, no step before ${settlingUntil} (the control plane just started)` : '';
  return {
    ...base,
    status: 'warning',
    message: `root rotation in progress, phase ${phase}${settling}, waiting for ${count(waitingFor.length, 'sidecar')}`,
    details: waitingFor,
    hint: 'it moves on once these sidecars run the new trust bundle or leaf: see skein ca status and skein get proxies',
  };
}
