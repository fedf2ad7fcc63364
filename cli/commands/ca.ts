/** `skein ca status|rotate`: the control plane's certificate authority (SPEC §5). */
import type { Command } from 'commander';
import type { AdminClient } from '../admin-client.js';
import { CA, type CaView } from '../answers.js';
import { adminClient, printJson, printTable, runAdmin, withAdminFlags, type AdminFlags } from './admin-common.js';

function print(view: CaView, flags: AdminFlags): void {
  if (flags.output === 'json') return printJson(view);
  const { rotating, waitingFor, settlingUntil } = view.rotation;
  const settling = settlingUntil ? `, no step before ${settlingUntil} (the control plane just started: sidecars are reconnecting)` : '';
  const waiting = rotating ? `, waiting for ${waitingFor.length} proxies${settling}` : '';
  process.stdout.write(`trust domain ${view.trustDomain}; rotation phase ${view.rotation.phase}${waiting}\n`);
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
      throw new Error(`rotation still in phase ${view.rotation.phase} after ${timeoutMs / 1000}s; waiting for: ${view.rotation.waitingFor.join(', ') || '(nobody)'}`);
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
    .option('--timeout <seconds>', 'with --wait: give up after this many seconds', '300');
  withAdminFlags(rotate).action((flags: AdminFlags & { wait?: boolean; timeout: string }) =>
    runAdmin(async () => {
      const client = adminClient(flags);
      let view = (await client.post('/api/v1/ca/rotate', {}, CA)).body;
      if (flags.wait) view = await waitForRotation(client, Number(flags.timeout) * 1000);
      print(view, flags);
    }),
  );
}
