/** `skein stat [SERVICE]`: golden metrics per service, or for one service its subsets, edges, open breakers and ejected endpoints. */
import { Option, type Command } from 'commander';
import type { Golden } from '../../control-plane/observability/golden.js';
import type { WindowName } from '../../control-plane/observability/stats.js';
import { notReported, STATS, type StatsAnswer } from '../answers.js';
import { parseServiceName } from '../flag-values.js';
import { adminClient, printJson, printTable, requireService, runAdmin, withAdminFlags, type AdminFlags } from './admin-common.js';

type StatFlags = AdminFlags & { window: WindowName };

const HEAD = ['RPS', 'SUCCESS', 'P50', 'P95', 'P99', 'REQUESTS'];

function cells(g: Golden | undefined): string[] {
  if (!g || g.requests === 0) return ['0', '-', '-', '-', '-', '0'];
  const ms = (v: number) => `${v < 10 ? v.toFixed(1) : Math.round(v)}ms`;
  return [
    g.rps.toFixed(g.rps < 10 ? 2 : 1),
    `${(g.successRate! * 100).toFixed(2)}%`,
    ms(g.latencyMs!.p50),
    ms(g.latencyMs!.p95),
    ms(g.latencyMs!.p99),
    String(g.requests),
  ];
}

export function printStats(stats: StatsAnswer, service: string | undefined, w: WindowName): void {
  const out = (line = '') => void process.stdout.write(`${line}\n`);
  if (!service) {
    if (stats.services.length === 0) return out(`no traffic seen in the last minute`);
    printTable(['SERVICE', ...HEAD], stats.services.map((s) => [s.seenFrom === 'outbound' ? `${s.service}*` : s.service, ...cells(s[w])]));
    if (stats.services.some((s) => s.seenFrom === 'outbound')) out(`* no sidecar of its own reports inbound traffic: seen from its callers`);
    return;
  }
  const own = stats.services.find((s) => s.service === service);
  // Without traffic a breaker may still be open and an endpoint ejected (for longer than the window): they are listed all the same.
  if (!own && stats.edges.length === 0) out(`no traffic to or from ${service} in the last minute`);
  else {
    if (own) {
      printTable(['SERVICE', 'SUBSET', ...HEAD], [[service, 'all', ...cells(own[w])], ...own.subsets.map((s) => [service, s.subset, ...cells(s[w])])]);
      out();
    }
    printTable(
      ['SOURCE', 'DESTINATION', 'SUBSET', ...HEAD],
      stats.edges.flatMap((e) => [[e.source, e.destination, 'all', ...cells(e[w])], ...(e.subsets.length > 1 ? e.subsets.map((s) => [e.source, e.destination, s.subset, ...cells(s[w])]) : [])]),
    );
  }
  const open = stats.breakers.filter((b) => b.state !== 'closed');
  if (open.length > 0) {
    out();
    printTable(['BREAKER HELD BY', 'DESTINATION', 'SUBSET', 'STATE'], open.map((b) => [`${b.service} ${b.instance}`, b.destination, b.subset, b.state]));
  }
  if (stats.ejections === undefined) {
    out();
    out(notReported('ejected endpoints'));
  } else if (stats.ejections.length > 0) {
    out();
    printTable(['EJECTED BY', 'DESTINATION', 'ENDPOINT', 'UNTIL', 'REASON'], stats.ejections.map((e) => [`${e.service} ${e.instance}`, e.destination, e.endpoint, e.until, e.reason]));
  }
}

export function registerStat(program: Command): void {
  const command = program
    .command('stat')
    .description('golden metrics (RPS, success rate, p50/p95/p99) per service, or per edge of one service')
    .argument('[service]', 'one service: its subsets, the edges into and out of it, its open circuit breakers and the endpoints outlier detection ejected', parseServiceName)
    .addOption(new Option('-w, --window <window>', 'time window').choices(['10s', '1m']).default('1m'));
  withAdminFlags(command).action((service: string | undefined, flags: StatFlags) =>
    runAdmin(async () => {
      const api = adminClient(flags);
      const query = service ? `?service=${encodeURIComponent(service)}` : '';
      const stats = (await api.get(`/api/v1/stats${query}`, STATS)).body;
      // No traffic at all: say whether the name is one the mesh knows before saying "no traffic".
      if (service && stats.edges.length === 0 && !stats.services.some((s) => s.service === service)) await requireService(api, service);
      if (flags.output === 'json') return printJson(stats);
      process.stdout.write(`window ${flags.window}; latency percentiles within bucket bounds of ${stats.bucketBoundsMs.join(', ')} ms\n`);
      printStats(stats, service, flags.window);
    }),
  );
}
