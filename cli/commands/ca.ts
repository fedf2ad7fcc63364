/** `skein ca status|rotate`: the control plane's certificate authority (SPEC §5). */
import { Option, type Command } from 'commander';
import { formatDuration } from '../../common/config/duration.js';
import type { AdminClient } from '../admin-client.js';
import { CA, type CaView } from '../answers.js';
import { durationFlagWithin } from '../flag-values.js';
import { adminClient, printJson, printTable, runAdmin, withAdminFlags, type AdminFlags } from './admin-common.js';

function print(view: CaView, flags: AdminFlags): void {
  if (flags.output === 'json') return printJson(view);
  const { rotating, waitingFor, settlingUntil } = view.rotation;
  const settling = settlingUntil ? `, no step before ${settlingUntil} (the control plane just started: sidecars are reconnecting)` : '';
  const waiting = rotating ? `, waiting for ${waitingFor.length} proxies${settling}` : '';
  const aliases = view.trustDomainAliases?.length ? ` (taking identities of ${view.trustDomainAliases.join(', ')} too, as aliases)` : '';
  process.stdout.write(`trust domain ${view.trustDomain}${aliases}; rotation phase ${view.rotation.phase}${waiting}\n`);
  printTable(
    ['ROOT', 'NOT AFTER', 'SIGNING'],
    view.roots.map((r) => [r.fingerprint, r.notAfter, r.signing ? 'yes' : 'no']),
  );
}

async function waitForRotation(client: AdminClient, timeoutMs: number): Promise<CaView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const view = (await client.get('/api/v1/ca', CA)).body;
    if (!view.rotation.rotating) return view;
    if (Date.now() > deadline) {
      throw new Error(`rotation still in phase ${view.rotation.phase} after ${formatDuration(timeoutMs)}; waiting for: ${view.rotation.waitingFor.join(', ') || '(nobody)'}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

export function registerCa(program: Command): void {
  const ca = program.command('ca').description("the control plane's certificate authority");
  withAdminFlags(ca.command('status').description('show the roots of the trust bundle and any rotation in progress')).action((flags: AdminFlags) =>
    runAdmin(async () => print((await adminClient(flags).get('/api/v1/ca', CA)).body, flags)),
  );
  const rotate = ca
    .command('rotate')
    .description('rotate the root: add a new root to the bundle, reissue every leaf from it, remove the old root once every proxy runs the new bundle')
    .option('--wait', 'wait until the rotation has finished')
    .addOption(new Option('--timeout <duration>', 'with --wait: give up (exit 1) after this long (1s to 24h)').argParser(durationFlagWithin('1s', '24h')).default(300_000, '5m'));
  withAdminFlags(rotate).action((flags: AdminFlags & { wait?: boolean; timeout: number }) =>
    runAdmin(async () => {
      const client = adminClient(flags);
      let view = (await client.post('/api/v1/ca/rotate', {}, CA)).body;
      if (flags.wait) view = await waitForRotation(client, flags.timeout);
      print(view, flags);
    }),
  );
}
