/** The box `skein demo` prints once everything is up: where to look and what to try. */
import { relative } from 'node:path';
import type { DemoState } from './state.js';
import { SCENARIO_NAMES } from './scenarios/index.js';

export function summaryBox(state: DemoState, cwd = process.cwd()): string {
  const dataDir = relative(cwd, state.dataDir) || '.';
  const shown = dataDir.startsWith('..') ? state.dataDir : `./${dataDir}`;
  const lines = [
    'Skein demo is up',
    '',
    `Shop (gateway)   ${state.gatewayUrl}/api/products`,
    `Dashboard        ${state.dashboardUrl}`,
    `Admin API        ${state.adminUrl}/api/v1   (OpenAPI: /api/v1/openapi.json)`,
    `Admin token      ${state.adminToken}`,
    `Registry         ${state.registry === 'consul' ? `Consul at ${state.consulUrl}` : 'built-in (control plane)'}`,
    `Load             ${state.loadRate > 0 ? `${state.loadRate} req/s: 60% browse, 30% view, 10% order (logs/load.log)` : 'off (--no-load)'}`,
    `Data and logs    ${shown}  (logs/<instance>.log, logs/<instance>.sidecar.log, logs/gateway.access.log)`,
    '',
    'In another terminal:',
    `  export SKEIN_ADMIN_URL=${state.adminUrl} SKEIN_ADMIN_TOKEN=${state.adminToken}`,
    `  curl -s ${state.gatewayUrl}/api/products`,
    '  npx skein stat                      golden metrics per service and edge',
    '  npx skein get proxies               every sidecar and the config version it runs',
    '  npx skein split catalog v1=90 v2=10',
    `  npx skein demo scenario NAME${shown === './.skein/demo' ? '' : ` --data-dir ${shown}`}`,
    `      NAME: ${SCENARIO_NAMES.join(', ')}`,
    '',
    'Ctrl-C stops everything.',
  ];
  const width = Math.max(...lines.map((l) => l.length));
  const top = `╭${'─'.repeat(width + 2)}╮`;
  const bottom = `╰${'─'.repeat(width + 2)}╯`;
  return [top, ...lines.map((l) => `│ ${l.padEnd(width)} │`), bottom].join('\n');
}
