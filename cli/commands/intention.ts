/**
 * `skein intention allow|deny SOURCE DEST` (and `default allow|deny`): edits the intentions
 * with read-modify-write under If-Match, so a concurrent edit is retried, never lost: after a
 * 412 it waits as the control plane's own writers do (conflictBackoff: a random wait that
 * doubles per try), so CLIs that collided do not collide again in lockstep. A rule
 * for the exact pair replaces any earlier one and goes first (first match wins, so it
 * beats wildcard rules). With no intentions yet, the default stays "allow" (what the mesh
 * does without intentions) until set with `skein intention default deny`.
 */
import { Argument, type Command } from 'commander';
import type { IntentionsInput } from '../../common/config/schema.js';
import { conflictBackoff } from '../../control-plane/store/store.js';
import { AdminApiError, type AdminClient } from '../admin-client.js';
import { INTENTIONS } from '../answers.js';
import { UsageError } from '../usage-error.js';
import { adminClient, printJson, runAdmin, withAdminFlags, type AdminFlags } from './admin-common.js';

/** Tries of one edit: enough for 20 CLIs editing at once to all land, with room to spare on a loaded machine (at most about 10s of waiting). */
const EDIT_ATTEMPTS = 20;

async function edit(api: AdminClient, change: (current: IntentionsInput) => IntentionsInput): Promise<IntentionsInput> {
  for (let attempt = 1; ; attempt++) {
    let current: IntentionsInput = { defaultAction: 'allow', rules: [] };
    let condition: Record<string, string> = { 'if-none-match': '*' };
    try {
      const res = await api.get('/api/v1/intentions', INTENTIONS);
      current = res.body;
      condition = { 'if-match': res.headers.get('etag') ?? '' };
    } catch (err) {
      if (!(err instanceof AdminApiError && err.status === 404)) throw err;
    }
    try {
      return (await api.request('PUT', '/api/v1/intentions', { body: change(current), headers: condition, expected: INTENTIONS })).body;
    } catch (err) {
      if (!(err instanceof AdminApiError && err.status === 412) || attempt >= EDIT_ATTEMPTS) throw err;
    }
    await conflictBackoff(attempt);
  }
}

export function registerIntention(program: Command): void {
  const command = program
    .command('intention')
    .description('service-to-service authorization: `skein intention allow gateway orders`, `skein intention default deny`')
    .addArgument(new Argument('<action>', 'allow, deny, or default').choices(['allow', 'deny', 'default']))
    .argument('<source>', 'calling service or * (for default: allow or deny)')
    .argument('[destination]', 'called service or *');
  withAdminFlags(command).action((action: 'allow' | 'deny' | 'default', source: string, destination: string | undefined, flags: AdminFlags) =>
    runAdmin(async () => {
      const api = adminClient(flags);
      let result: IntentionsInput;
      if (action === 'default') {
        if ((source !== 'allow' && source !== 'deny') || destination !== undefined) throw new UsageError('usage: skein intention default allow|deny');
        result = await edit(api, (current) => ({ ...current, defaultAction: source }));
        if (flags.output === 'json') return printJson(result);
        process.stdout.write(`default action: ${source}\n`);
        return;
      }
      if (!destination) throw new UsageError(`usage: skein intention ${action} SOURCE DESTINATION`);
      result = await edit(api, (current) => ({
        ...current,
        rules: [{ source, destination, action }, ...(current.rules ?? []).filter((r) => r.source !== source || r.destination !== destination)],
      }));
      if (flags.output === 'json') return printJson(result);
      process.stdout.write(`${source} -> ${destination}: ${action}\n`);
    }),
  );
}
