/**
 * `skein check`'s proxies group, judged from `GET /api/v1/proxies`: sidecars connected, config
 * converged on the current snapshot, workload certificates renewed, and what older sidecars run
 * without.
 */
import type { ProxyView } from '../../control-plane/push/proxies.js';
import { count, type CheckResult } from './result.js';

/** A control plane older than `runsWithout` sends none. */
export type ProxyAnswer = Omit<ProxyView, 'runsWithout'> & { runsWithout?: readonly string[] };

export interface ProxiesAnswer {
  readonly snapshotVersion: string;
  readonly proxies: readonly ProxyAnswer[];
}

/**
 * The leaf lifetime assumed when the control plane does not say (`--cert-ttl`'s default). A
 * sidecar renews at two thirds of its leaf's life, less up to a tenth of jitter, so a leaf with
 * less than a quarter of its life left is past that point by an hour or more at the default
 * 24 h: its renewals are failing. A fixed threshold of a day would flag every sidecar at that default.
 */
export const DEFAULT_LEAF_LIFETIME_MS = 24 * 60 * 60 * 1000;

const who = (p: ProxyAnswer) => `${p.instance} (${p.service})`;

export function judgeConnected(answer: ProxiesAnswer): CheckResult {
  const base = { name: 'proxies-connected', group: 'proxies' } as const;
  if (answer.proxies.length === 0) {
    return { ...base, status: 'warning', message: 'no sidecar is connected to the control plane', hint: 'start sidecars with --control-plane HOST:PORT --token T (see "Control plane" in the README)' };
  }
  const services = new Set(answer.proxies.map((p) => p.service)).size;
  return { ...base, status: 'ok', message: `${count(answer.proxies.length, 'sidecar')} of ${count(services, 'service')} connected` };
}

/**
 * Whether every sidecar runs the current snapshot: one that NACKed it (refused it, and runs an
 * older one) is a failure; one merely behind is a warning, as a push may be in flight (the
 * caller reads again after a grace before judging, see check.ts).
 */
export function judgeConvergence(answer: ProxiesAnswer): CheckResult {
  const base = { name: 'proxies-converged', group: 'proxies' } as const;
  const nacked = answer.proxies.filter((p) => p.state === 'NACKED');
  const behind = answer.proxies.filter((p) => p.state === 'STALE');
  if (nacked.length === 0 && behind.length === 0) return { ...base, status: 'ok', message: `every connected sidecar runs snapshot ${answer.snapshotVersion}` };
  const details = [
    ...nacked.map((p) => `${who(p)} NACKed snapshot ${p.nackedVersion}: ${p.nackReason}`),
    ...behind.map((p) => `${who(p)} ${p.ackedVersion === null ? 'has not ACKed any snapshot yet' : `runs snapshot ${p.ackedVersion}`}`),
  ];
  const parts = [nacked.length > 0 && `${count(nacked.length, 'sidecar')} NACKed`, behind.length > 0 && `${behind.length} behind`].filter(Boolean).join(', ');
  if (nacked.length > 0) {
    return { ...base, status: 'failure', message: `config has not converged on snapshot ${answer.snapshotVersion}: ${parts}`, details, hint: 'a NACKed sidecar keeps its last good snapshot: fix what it names (skein get proxies shows LAST NACK) or upgrade the sidecar' };
  }
  return { ...base, status: 'warning', message: `config has not converged on snapshot ${answer.snapshotVersion}: ${parts}`, details, hint: 'a push may still be in flight: run skein check again; a sidecar that stays behind is not answering its pushes (see its log)' };
}

/** Workload certificates past their renewal time (a warning: renewal is failing) or expired (a failure: peers refuse it). */
export function judgeWorkloadCertificates(answer: ProxiesAnswer, leafLifetimeMs: number | undefined, now: number): CheckResult {
  const base = { name: 'workload-certificates', group: 'proxies' } as const;
  const withCert = answer.proxies.filter((p) => p.certExpiry !== null);
  if (withCert.length === 0) return { ...base, status: 'ok', message: 'no connected sidecar reports a workload certificate' };
  const overdue = (leafLifetimeMs ?? DEFAULT_LEAF_LIFETIME_MS) / 4;
  const left = (p: ProxyAnswer) => Date.parse(p.certExpiry!) - now;
  const expired = withCert.filter((p) => left(p) <= 0);
  const renewing = withCert.filter((p) => left(p) > 0 && left(p) < overdue);
  const details = [...expired.map((p) => `${who(p)}: expired at ${p.certExpiry}`), ...renewing.map((p) => `${who(p)}: expires at ${p.certExpiry}`)];
  const hint = "its renewals fail: see the sidecar's log and the control plane's CSR counts (GET /api/v1/ca, signing)";
  if (expired.length > 0) return { ...base, status: 'failure', message: `${count(expired.length, 'sidecar')} ${expired.length === 1 ? 'runs' : 'run'} on an expired workload certificate, which peers refuse`, details, hint };
  if (renewing.length > 0) return { ...base, status: 'warning', message: `${count(renewing.length, 'sidecar')} past the renewal time of ${renewing.length === 1 ? 'its' : 'their'} workload certificate`, details, hint };
  return { ...base, status: 'ok', message: `workload certificates of ${count(withCert.length, 'sidecar')} renewed in time` };
}

/** Sidecars older than features the config uses run the snapshot without them (version skew). */
export function judgeRunsWithout(answer: ProxiesAnswer): CheckResult {
  const base = { name: 'proxies-runs-without', group: 'proxies' } as const;
  const lacking = answer.proxies.filter((p) => (p.runsWithout ?? []).length > 0);
  if (lacking.length === 0) return { ...base, status: 'ok', message: 'every connected sidecar runs all the features the config uses' };
  return {
    ...base,
    status: 'warning',
    message: `${count(lacking.length, 'sidecar')} older than the config ${lacking.length === 1 ? 'runs' : 'run'} without some of it`,
    details: lacking.map((p) => `${who(p)}: ${p.runsWithout!.join('; ')}`),
    hint: 'upgrade these sidecars (skein get proxies shows RUNS WITHOUT)',
  };
}
