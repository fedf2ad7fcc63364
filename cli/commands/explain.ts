/** `skein explain SERVICE METHOD PATH [-H k:v] [--from SOURCE]`: the route, split, endpoints, policy and intention a request would get, and why. */
import { InvalidArgumentError, type Command } from 'commander';
import type { IntentionVerdict } from '../../control-plane/admin-api/explain-routes.js';
import type { HashOn, HeaderChanges } from '../../common/config/schema.js';
import type { SplitTarget } from '../../common/routing/explain.js';
import { hostPort } from '../../common/net/host-port.js';
import { EXPLANATION, notReported, type ExplainAnswerSeen } from '../answers.js';
import { parseMethod, parseRequestPath, parseServiceName } from '../flag-values.js';
import { adminClient, printJson, printTable, runAdmin, withAdminFlags, type AdminFlags } from './admin-common.js';

function collectHeader(value: string, previous: string[] = []): string[] {
  if (!/^[^:\s]+:/.test(value)) throw new InvalidArgumentError(`expected NAME:VALUE, got ${value}`);
  return [...previous, value];
}

/** A subset as explain prints it: `(all)` for the catch-all. */
const subsetText = (subset: string): string => (subset === '*' ? '(all)' : subset);

/** Where a subset of the split fails over to: where it goes now when the snapshot shows it has no endpoint, else where it would. */
function failoverLine(t: SplitTarget): string {
  const name = (service: string, subset: string) => `${service}/${subsetText(subset)}`;
  const subset = subsetText(t.subset);
  const targets = t.failover!.map((f) => name(f.service, f.subset)).join(', then ');
  if (t.endpoints?.length !== 0) return `failover: when ${subset} has no healthy endpoint (none, or all ejected), to ${targets}`;
  const to = t.failover!.find((f) => f.endpoints === undefined || f.endpoints.length > 0);
  if (to === undefined) return `failover: ${subset} has no endpoint, nor has ${targets}: 503 no-healthy-endpoints`;
  return `failover: ${subset} has no endpoint: its requests go to ${name(to.service, to.subset)}${to.endpoints ? ` (${to.endpoints.map((e) => hostPort(e.address, e.port)).join(' ')})` : ''}`;
}

function intentionLines(v: IntentionVerdict, destination: string): string[] {
  const rule = v.rule && `rule ${v.rule.index} (${v.rule.source} -> ${v.rule.destination}${v.rule.action ? ` ${v.rule.action}` : ''})`;
  const by = v.permission
    ? `by permission ${v.permission.index} (${v.permission.action}) of ${rule}`
    : v.decidedBy === 'defaultAction'
      ? `by the default action (${v.allowed ? 'allow' : 'deny'})${rule ? `: no permission of ${rule} matches` : ''}`
      : rule
        ? `by ${rule}`
        : '(the mesh has no intentions)';
  const verdict = v.allowed ? 'allowed' : `denied: ${destination}'s sidecar answers 403 (x-skein-reason: denied)`;
  return [`intentions: ${v.source} -> ${destination} ${verdict} ${by}`, ...(v.unmatchedPermissions ?? []).map((p) => `  permission ${p.index} does not match: ${p.reasons.join('; ')}`)];
}

/** `from`: the caller asked about (`--from`), whose intention verdict a control plane older than the flag does not give. */
function printExplanation(a: ExplainAnswerSeen, from: string | undefined): void {
  const out = (line = ''): void => void process.stdout.write(`${line}\n`);
  out(`${a.request.method} ${a.request.path} -> ${a.service}  (snapshot ${a.snapshotVersion})`);
  if (a.refused !== undefined) return out(`a sidecar refuses this path: 400 (x-skein-reason: bad-request): ${a.refused}`);
  if (a.path !== a.request.path.split('?')[0]) out(`  routed as ${a.path} (the path normalised, as the sidecar forwards it)`);
  if (!a.known) return out(`${a.service} is not in the mesh: the request gets 404 (x-skein-reason: no-route)`);
  for (const s of a.skipped) out(`  rule ${s.index} "${s.name}" does not match: ${s.reasons.join('; ')}`);
  if (!a.matched) return out('no rule matches: the request gets 404 (x-skein-reason: no-route)');
  out(`  rule ${a.matched.index} "${a.matched.name}" matches${a.matched.implicit ? ' (implicit catch-all: the service has no routes)' : ''}`);
  if (a.rewrittenPath !== undefined || a.policy?.rewrite?.host !== undefined) out(`  ${rewriteLine(a)}`);
  if (a.intention) for (const line of intentionLines(a.intention, a.service)) out(`  ${line}`);
  else if (from) out(`  ${notReported(`whether intentions admit ${from}`)}`);
  out();
  printTable(
    ['SUBSET', 'WEIGHT', 'SELECTS', 'ENDPOINTS'],
    a.split.map((t) => [
      t.subset === '*' ? '(all)' : t.subset,
      `${t.weight}%`,
      Object.entries(t.selector).map(([k, v]) => `${k}=${v}`).join(',') || '*',
      t.endpoints ? (t.endpoints.length ? t.endpoints.map((e) => hostPort(e.address, e.port)).join(' ') : t.failover ? 'none (fails over, below)' : 'none (503 no-healthy-endpoints)') : undefined,
    ]),
  );
  for (const t of a.split) {
    if (t.failover) out(failoverLine(t));
    for (const f of t.failoverSkipped ?? []) out(`failover target ${f.service}/${subsetText(f.subset)} of ${subsetText(t.subset)} is left out: ${f.why}`);
  }
  // A matched rule comes with both lists, empty when none is: absent, the control plane predates them.
  if (a.openBreakers === undefined) out(notReported("callers' open breakers"));
  if (a.affinity && a.policy?.hashOn) {
    const on = hashOnText(a.policy.hashOn);
    if (a.affinity.value === null) out(`ring-hash: the request has no ${on}, so each such request goes to a random endpoint`);
    else if (a.affinity.endpoints.length === 0) out(`ring-hash on ${on} ${JSON.stringify(a.affinity.value)}: one endpoint for every request with it, which the snapshot cannot name (it lists no endpoints: the sidecars find them in discovery)`);
    else for (const e of a.affinity.endpoints) out(`ring-hash on ${on} ${JSON.stringify(a.affinity.value)}: ${e.subset === '*' ? '' : `${e.subset} `}${e.endpoint}, for every request with it, while that endpoint is not ejected`);
  }
  for (const b of a.openBreakers ?? []) {
    const answers = b.state === 'half-open' ? 'it sends a trial request and answers the others' : 'it answers';
    out(`breaker for ${b.subset === '*' ? '(all)' : b.subset} ${b.state} in ${b.service} ${b.instance}: ${answers} 503 (x-skein-reason: circuit-open)`);
  }
  if (a.ejectedEndpoints === undefined) out(notReported('ejected endpoints'));
  for (const e of a.ejectedEndpoints ?? []) {
    out(`endpoint ${e.endpoint} ejected by ${e.service} ${e.instance} until ${e.until}${e.reason ? ` (${e.reason})` : ''}: it sends it nothing while another endpoint is not ejected`);
  }
  const p = a.policy;
  if (!p) return;
  out();
  out(`protocol ${p.protocol}, lb ${p.lb}${p.hashOn ? ` on ${hashOnText(p.hashOn)}` : ''}, timeout ${p.timeout}`);
  out(`retries: ${p.retries.attempts} on ${p.retries.on.join(',')}, per try ${p.retries.perTryTimeout}, backoff ${p.retries.backoff.base}..${p.retries.backoff.max}, budget ${p.retries.budget.ratio * 100}% + ${p.retries.budget.minPerSecond}/s${p.retryNonIdempotent ? ', non-idempotent too' : ''}`);
  // Said only when the control plane says so: one older than the field does not, and taking that for false would call a GET not idempotent.
  if (p.retries.attempts > 0 && p.retriedAfterSent === false) out(`  ${a.request.method} is not idempotent: retried only when a try never reached the upstream (connect-failure)`);
  const cb = p.circuitBreaker;
  out(`circuit breaker: opens at ${cb.errorThresholdPercentage}% errors over ${cb.rollingWindow} (min ${cb.volumeThreshold} requests), resets after ${cb.resetTimeout}, max ${cb.maxConcurrent} concurrent`);
  const od = p.outlierDetection;
  out(`outlier detection: eject after ${od.consecutiveErrors} consecutive errors for ${od.baseEjectionTime}+, at most ${od.maxEjectionPercent}%`);
  if (p.fault) out(`fault injection: ${JSON.stringify(p.fault)}`);
  if (p.mirror) out(`mirror: ${JSON.stringify(p.mirror)}`);
  if (p.requestHeaders) out(`request headers: ${headerChangesText(p.requestHeaders)}`);
  if (p.responseHeaders) out(`response headers (of the upstream's answers, not the sidecar's own): ${headerChangesText(p.responseHeaders)}`);
}

/** What the app gets in place of what was sent: the rewritten path and Host. */
function rewriteLine(a: ExplainAnswerSeen): string {
  const parts: string[] = [];
  if (a.rewrittenPath !== undefined) parts.push(`path ${a.rewrittenPath} (rewrite.pathPrefix ${a.policy?.rewrite?.pathPrefix ?? '?'})`);
  if (a.policy?.rewrite?.host !== undefined) parts.push(`Host ${a.policy.rewrite.host}`);
  return `forwarded with ${parts.join(', ')}`;
}

/** `remove x-debug; set x-api: v2; add x-tag: a`, in the order a sidecar applies them. */
function headerChangesText(c: HeaderChanges): string {
  const parts: string[] = [];
  if (c.remove?.length) parts.push(`remove ${c.remove.join(', ')}`);
  for (const [name, value] of Object.entries(c.set ?? {})) parts.push(`set ${name}: ${value}`);
  for (const [name, value] of Object.entries(c.add ?? {})) parts.push(`add ${name}: ${value}`);
  return parts.join('; ');
}

/** `header x-user`, `cookie session`, `query user`: what a ring-hash destination hashes. */
function hashOnText(on: HashOn): string {
  return on.header !== undefined ? `header ${on.header}` : on.cookie !== undefined ? `cookie ${on.cookie}` : `query parameter ${on.query}`;
}

export function registerExplain(program: Command): void {
  const command = program
    .command('explain')
    .description('which route, subset, endpoints and policy a request would get, and why')
    .argument('<service>', 'destination service', parseServiceName)
    .argument('<method>', 'HTTP method, e.g. GET', parseMethod)
    .argument('<path>', 'request path, e.g. /products/1', parseRequestPath)
    .option('-H, --header <name:value>', 'request header (repeatable)', collectHeader, [])
    .option('--from <source>', 'calling service: whether intentions admit it, and only its sidecars\' open breakers and ejections', parseServiceName);
  withAdminFlags(command).action((service: string, method: string, path: string, flags: AdminFlags & { header: string[]; from?: string }) =>
    runAdmin(async () => {
      const query = new URLSearchParams({ service, method, path });
      for (const h of flags.header) query.append('header', h);
      if (flags.from) query.set('source', flags.from);
      const answer = (await adminClient(flags).get(`/api/v1/explain?${query}`, EXPLANATION)).body;
      if (flags.output === 'json') printJson(answer);
      else printExplanation(answer, flags.from);
    }),
  );
}
