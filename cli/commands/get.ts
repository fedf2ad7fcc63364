/** `skein get services|routes|proxies|intentions [NAME]`: read state from the admin API. */
import { Argument, type Command } from 'commander';
import { ruleName } from '../../common/config/schema.js';
import { hostPort } from '../../common/net/host-port.js';
import type { ServiceView } from '../../control-plane/admin-api/services-routes.js';
import { AdminApiError, type AdminClient } from '../admin-client.js';
import { INTENTIONS, PROXIES, ROUTES, ROUTES_BY_SERVICE, SERVICE, SERVICES, type IntentionsAnswer, type RouteRuleAnswer } from '../answers.js';
import { parseServiceName } from '../flag-values.js';
import { selectedInstances } from '../service-subsets.js';
import { adminClient, formatSplit, printJson, printTable, requireService, runAdmin, warningOf, withAdminFlags, type AdminFlags } from './admin-common.js';

type Kind = 'services' | 'routes' | 'proxies' | 'intentions';

function describeMatch(match: RouteRuleAnswer['match']): string {
  if (!match || Object.keys(match).length === 0) return '*';
  const parts: string[] = [];
  if (match.method) parts.push([match.method].flat().join(','));
  if (match.path) parts.push(`path=${match.path}`);
  if (match.pathPrefix) parts.push(`prefix=${match.pathPrefix}`);
  if (match.pathRegex) parts.push(`regex=${match.pathRegex}`);
  for (const [name, m] of Object.entries(match.headers ?? {})) parts.push(`${name}:${typeof m === 'string' ? m : JSON.stringify(m)}`);
  return parts.join(' ');
}

/**
 * Each subset as `name(healthy/total)`: of the instances it selects, those healthy (counted as
 * the HEALTHY column counts them; critical and disconnected ones are not), then all of them.
 */
function describeSubsets(view: ServiceView): string {
  return view.subsets
    .map((subset) => {
      const selected = selectedInstances(view, subset);
      return `${subset.name}(${selected.filter((i) => i.health === 'healthy').length}/${selected.length})`;
    })
    .join(' ');
}

/** A listing read past stored entries that fail their schema names them in a Warning (they are left out of it): said on stderr, so `-o json` stays parseable. */
function warnOfStored(headers: Headers): void {
  const warning = warningOf(headers);
  if (warning !== undefined) process.stderr.write(`skein: warning: ${warning}\n`);
}

async function getServices(api: AdminClient, name: string | undefined, flags: AdminFlags): Promise<void> {
  if (name) {
    const view = (await api.get(`/api/v1/services/${encodeURIComponent(name)}`, SERVICE)).body;
    if (flags.output === 'json') return printJson(view);
    process.stdout.write(`${view.name} (${view.protocol}); subsets (healthy/total): ${describeSubsets(view) || '-'}\n`);
    return printTable(['INSTANCE', 'ADDRESS', 'VERSION', 'HEALTH'], view.instances.map((i) => [i.id, hostPort(i.address, i.port), i.version, i.health]));
  }
  const res = await api.get('/api/v1/services', SERVICES);
  warnOfStored(res.headers);
  const views = res.body;
  if (flags.output === 'json') return printJson(views);
  printTable(
    ['NAME', 'PROTOCOL', 'INSTANCES', 'HEALTHY', 'SUBSETS'],
    views.map((v) => [v.name, v.protocol, v.instances.length, v.instances.filter((i) => i.health === 'healthy').length, describeSubsets(v)]),
  );
}

async function getRoutes(api: AdminClient, name: string | undefined, flags: AdminFlags): Promise<void> {
  let all: Record<string, RouteRuleAnswer[]>;
  if (name) all = { [name]: await routesOf(api, name) };
  else {
    const res = await api.get('/api/v1/routes', ROUTES_BY_SERVICE);
    warnOfStored(res.headers);
    all = res.body;
  }
  if (flags.output === 'json') return printJson(name ? all[name] : all);
  if (name && all[name]!.length === 0) {
    process.stdout.write(`${name}: no route rules; every request goes to any of its endpoints (the implicit catch-all rule)\n`);
    return;
  }
  const rows = Object.entries(all).flatMap(([service, rules]) =>
    rules.map((rule, i) => [service, ruleName(rule, i), describeMatch(rule.match), formatSplit(rule.split), [rule.timeout && `timeout=${rule.timeout}`, rule.fault && 'fault', rule.mirror && `mirror=${rule.mirror.subset}`].filter(Boolean).join(' ')]),
  );
  printTable(['SERVICE', 'RULE', 'MATCH', 'SPLIT', 'EXTRA'], rows);
}

/** A service's stored rules; none (not an error) for a service the mesh knows without any, 404 for one it does not know. */
async function routesOf(api: AdminClient, name: string): Promise<RouteRuleAnswer[]> {
  try {
    return (await api.get(`/api/v1/routes/${encodeURIComponent(name)}`, ROUTES)).body;
  } catch (err) {
    if (!(err instanceof AdminApiError && err.status === 404)) throw err;
    await requireService(api, name);
    return [];
  }
}

async function getProxies(api: AdminClient, name: string | undefined, flags: AdminFlags): Promise<void> {
  if (name) await requireService(api, name);
  const query = name ? `?service=${encodeURIComponent(name)}` : '';
  const body = (await api.get(`/api/v1/proxies${query}`, PROXIES)).body;
  if (flags.output === 'json') return printJson(body);
  process.stdout.write(`snapshot version ${body.snapshotVersion}\n`);
  printTable(
    ['SERVICE', 'INSTANCE', 'VERSION', 'ADDRESS', 'STATE', 'ACKED', 'CONNECTED', 'IDENTITY', 'CERT EXPIRY', 'LAST NACK', 'RUNS WITHOUT'],
    // A control plane older than `runsWithout` sends none.
    body.proxies.map((p) => [p.service, p.instance, p.version, p.address, p.state, p.ackedVersion, p.connectedAt, p.spiffeId, p.certExpiry, p.nackReason && `${p.nackedVersion}: ${p.nackReason}`, p.runsWithout?.join('; ')]),
  );
}

/** A rule's permissions in one cell, in order: `allow pathPrefix=/orders method=GET,POST; deny path=/admin`. */
function permissionsText(permissions: readonly { action: string; http: Record<string, unknown> }[]): string {
  const field = ([name, value]: [string, unknown]): string => `${name}=${name === 'method' ? [value].flat().join(',') : typeof value === 'string' ? value : JSON.stringify(value)}`;
  return permissions.map((p) => [p.action, ...Object.entries(p.http).map(field)].join(' ')).join('; ');
}

/** With a name, only the rules that name it as source or destination (not `*` rules), in their order. */
async function getIntentions(api: AdminClient, name: string | undefined, flags: AdminFlags): Promise<void> {
  let intentions: IntentionsAnswer;
  try {
    intentions = (await api.get('/api/v1/intentions', INTENTIONS)).body;
  } catch (err) {
    if (err instanceof AdminApiError && err.status === 404) {
      if (flags.output === 'json') return printJson(null);
      process.stdout.write('no intentions configured: every caller is allowed\n');
      return;
    }
    throw err;
  }
  if (name) intentions = { ...intentions, rules: (intentions.rules ?? []).filter((r) => r.source === name || r.destination === name) };
  if (flags.output === 'json') return printJson(intentions);
  process.stdout.write(`default action: ${intentions.defaultAction ?? 'deny'}\n`);
  printTable(['SOURCE', 'DESTINATION', 'ACTION'], (intentions.rules ?? []).map((r) => [r.source, r.destination, r.action ?? permissionsText(r.permissions ?? [])]));
}

export function registerGet(program: Command): void {
  const command = program
    .command('get')
    .description('read services, routes, proxies or intentions from the control plane')
    .addArgument(new Argument('<kind>', 'what to read').choices(['services', 'routes', 'proxies', 'intentions']))
    .argument('[name]', 'one service (for proxies: its sidecars; for intentions: the rules naming it as source or destination)', parseServiceName);
  withAdminFlags(command).action((kind: Kind, name: string | undefined, flags: AdminFlags) =>
    runAdmin(async () => {
      const api = adminClient(flags);
      if (kind === 'services') await getServices(api, name, flags);
      else if (kind === 'routes') await getRoutes(api, name, flags);
      else if (kind === 'proxies') await getProxies(api, name, flags);
      else await getIntentions(api, name, flags);
    }),
  );
}
