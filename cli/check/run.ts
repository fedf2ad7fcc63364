/**
 * Runs `skein check`'s checks against a control plane's admin API, group by group, reading only
 * what the API serves. Nothing is checked past a control plane that does not answer; a later
 * read that fails fails the checks that needed it, naming why, and the rest still run.
 */
import type { CanaryState } from '../../control-plane/canary/controller.js';
import type { ServiceView } from '../../control-plane/admin-api/services-routes.js';
import { AdminApiError, type AdminClient } from '../admin-client.js';
import { CA, CANARY, CHECKED, INTENTIONS, OPENAPI, PROXIES, ROUTES_BY_SERVICE, SERVICES, type CaView, type IntentionsAnswer } from '../answers.js';
import { judgeRoot, judgeRotation } from './certificates.js';
import { judgeCanaries, judgeDefaultAction, judgeSplitSubsets, judgeStoredConfig } from './config.js';
import { judgeAdminToken, judgeControlPlane } from './control-plane.js';
import { judgeConnected, judgeConvergence, judgeRunsWithout, judgeWorkloadCertificates, type ProxiesAnswer } from './proxies.js';
import { unreadable, type CheckResult } from './result.js';

/** How long a sidecar not yet on the current snapshot is given before it counts as behind: a push takes well under a second. */
export const CONVERGENCE_GRACE_MS = 2_000;

export interface CheckDeps {
  readonly api: Pick<AdminClient, 'baseUrl' | 'get' | 'post'>;
  /** Whether SKEIN_ADMIN_TOKEN is set (the client sends it). */
  readonly tokenSet: boolean;
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;
  readonly graceMs: number;
}

export async function runChecks(deps: CheckDeps): Promise<CheckResult[]> {
  const described = await deps.api.get('/api/v1/openapi.json', OPENAPI).then((res) => ({ version: res.body.info.version }), asApiError);
  const reached = judgeControlPlane(deps.api.baseUrl, described);
  if (reached.status === 'failure') return [reached];
  const ca = await deps.api.get('/api/v1/ca', CA).then((res) => res.body, asApiError);
  return [reached, await adminToken(deps), ...certificates(ca, deps.now()), ...(await proxies(deps, ca)), ...(await config(deps))];
}

/** Only an API error is a finding; anything else (a bug) is thrown on. */
function asApiError(err: unknown): AdminApiError {
  if (err instanceof AdminApiError) return err;
  throw err;
}

/** An empty apply file is refused (422) after the token is checked, and nothing is written: a write's 401 without a write. */
async function adminToken(deps: CheckDeps): Promise<CheckResult> {
  if (!deps.tokenSet) return judgeAdminToken(false, undefined);
  const refusal = await deps.api.post('/api/v1/apply/check', {}, CHECKED).then(() => undefined, asApiError);
  return judgeAdminToken(true, refusal?.status === 422 ? undefined : refusal);
}

function certificates(ca: CaView | AdminApiError, now: number): CheckResult[] {
  if (ca instanceof AdminApiError) return [unreadable('ca-root', 'certificates', 'the CA (GET /api/v1/ca)', ca)];
  return [judgeRoot(ca, now), judgeRotation(ca)];
}

/** Sidecars not on the current snapshot are read again once after the grace, so a push in flight is not taken for one behind. */
async function proxies(deps: CheckDeps, ca: CaView | AdminApiError): Promise<CheckResult[]> {
  const read = () => deps.api.get('/api/v1/proxies', PROXIES).then((res): ProxiesAnswer => res.body, asApiError);
  let answer = await read();
  if (!(answer instanceof AdminApiError) && answer.proxies.some((p) => p.state !== 'SYNCED')) {
    await deps.sleep(deps.graceMs);
    answer = await read();
  }
  if (answer instanceof AdminApiError) return [unreadable('proxies-connected', 'proxies', 'the connected sidecars (GET /api/v1/proxies)', answer)];
  const leafLifetimeMs = ca instanceof AdminApiError ? undefined : ca.leafLifetimeMs;
  return [judgeConnected(answer), judgeConvergence(answer), judgeWorkloadCertificates(answer, leafLifetimeMs, deps.now()), judgeRunsWithout(answer)];
}

async function config(deps: CheckDeps): Promise<CheckResult[]> {
  const { api } = deps;
  // No intentions stored is a 404: the mesh then allows every call.
  const intentions = await api.get('/api/v1/intentions', INTENTIONS).then(
    (res): IntentionsAnswer | undefined => res.body,
    (err: unknown) => {
      const error = asApiError(err);
      return error.status === 404 ? undefined : error;
    },
  );
  const services = await api.get('/api/v1/services', SERVICES).then((res) => res.body, asApiError);
  const routes = await api.get('/api/v1/routes', ROUTES_BY_SERVICE).then((res) => res.body, asApiError);
  const results: CheckResult[] = [intentions instanceof AdminApiError ? unreadable('intentions-default', 'config', 'the intentions (GET /api/v1/intentions)', intentions) : judgeDefaultAction(intentions)];
  if (services instanceof AdminApiError) return [...results, unreadable('stored-config', 'config', 'the services (GET /api/v1/services)', services)];
  results.push(judgeStoredConfig(services));
  results.push(routes instanceof AdminApiError ? unreadable('split-subsets', 'config', 'the route rules (GET /api/v1/routes)', routes) : judgeSplitSubsets(routes, services));
  const canaries = await latestCanaries(deps, services);
  results.push(canaries instanceof AdminApiError ? unreadable('canaries', 'config', 'the canary rollouts (GET /api/v1/canaries/SERVICE)', canaries) : judgeCanaries(canaries));
  return results;
}

/** The latest rollout of each service that has had one (the API answers one service at a time; 404 for none). */
async function latestCanaries(deps: CheckDeps, services: readonly ServiceView[]): Promise<CanaryState[] | AdminApiError> {
  const latest: CanaryState[] = [];
  for (const { name } of services) {
    try {
      latest.push((await deps.api.get(`/api/v1/canaries/${encodeURIComponent(name)}`, CANARY)).body);
    } catch (err) {
      if (asApiError(err).status !== 404) return asApiError(err);
    }
  }
  return latest;
}
