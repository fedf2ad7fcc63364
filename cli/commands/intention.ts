/**
 * `skein intention allow|deny SOURCE DEST` (and `default allow|deny`): edits the intentions
 * with read-modify-write under If-Match, so a concurrent edit is retried, never lost: after a
 * 412 it waits as the control plane's own writers do (conflictBackoff: a random wait that
 * doubles per try), so CLIs that collided do not collide again in lockstep. The rules are
 * kept in precedence order (`withRule`), so an exact pair beats wildcard rules whatever order
 * they were set in. With no intentions yet, the default stays "allow" (what the mesh does
 * without intentions) until set with `skein intention default deny`.
 */
import { Argument, type Command } from 'commander';
import { hiddenRules, inPrecedenceOrder } from '../../common/config/intention-precedence.js';
import { serviceName } from '../../common/config/schema.js';
import { conflictBackoff } from '../../control-plane/store/store.js';
import { AdminApiError, type AdminClient } from '../admin-client.js';
import { INTENTIONS, type IntentionsAnswer } from '../answers.js';
import { UsageError } from '../usage-error.js';
import { adminClient, printJson, writeWarning, runAdmin, withAdminFlags, type AdminFlags } from './admin-common.js';

/** Tries of one edit: enough for 20 CLIs editing at once to all land, with room to spare on a loaded machine (at most about 10s of waiting). */
const EDIT_ATTEMPTS = 20;

type Rule = NonNullable<IntentionsAnswer['rules']>[number];

/**
 * The rules once `rule` is set: it replaces the rule of its pair, and the list is in
 * precedence order (exact pairs, then rules with one `*`, then `* -> *`: see
 * intention-precedence.ts) with `rule` first among its equals, so the newest of those wins, and
 * no more specific rule set before it is hidden. A list stored in another order (by an older
 * CLI, or written whole with a PUT or `skein apply`) is put in that order too, equals keeping
 * theirs, which lets a rule a wildcard hid decide; a repeat of a pair, which never decided,
 * is dropped. `rewritten` says whether that moved or dropped any other rule.
 */
export function withRule(rules: readonly Rule[], rule: Rule): { rules: Rule[]; rewritten: boolean } {
  const others = rules.filter((r) => r.source !== rule.source || r.destination !== rule.destination);
  const ordered = inPrecedenceOrder([rule, ...others]);
  const hidden = new Set(hiddenRules(ordered).map((h) => h.index));
  const next = ordered.filter((_, i) => !hidden.has(i));
  const kept = next.filter((r) => r !== rule);
  return { rules: next, rewritten: kept.length !== others.length || kept.some((r, i) => r !== others[i]) };
}

/**
 * Reads, changes and writes the intentions (see above). A write stored but not published
 * (another stored entry keeps the config from being composed) is said on stderr, as
 * `skein apply` and `skein split` say it: sidecars keep deciding by the old rules.
 */
export async function editIntentions(api: AdminClient, change: (current: IntentionsAnswer) => IntentionsAnswer, notice: (line: string) => void): Promise<IntentionsAnswer> {
  for (let attempt = 1; ; attempt++) {
    let current: IntentionsAnswer = { defaultAction: 'allow', rules: [] };
    let condition: Record<string, string> = { 'if-none-match': '*' };
    try {
      const res = await api.get('/api/v1/intentions', INTENTIONS);
      current = res.body;
      condition = { 'if-match': res.headers.get('etag') ?? '' };
    } catch (err) {
      if (!(err instanceof AdminApiError && err.status === 404)) throw err;
    }
    try {
      const res = await api.request('PUT', '/api/v1/intentions', { body: change(current), headers: condition, expected: INTENTIONS });
      const warning = writeWarning(res.headers);
      if (warning !== undefined) notice(`warning: the intentions are ${warning}`);
      return res.body;
    } catch (err) {
      if (!(err instanceof AdminApiError && err.status === 412) || attempt >= EDIT_ATTEMPTS) throw err;
    }
    await conflictBackoff(attempt);
  }
}

/**
 * A rule's SOURCE or DESTINATION: a service name or `*`, as the control plane checks a rule's,
 * so a typo is a usage error naming the argument (exit 2), not a 422 naming `rules[N]`, a place
 * in the stored list the user never typed.
 */
function checkRuleService(argument: string, value: string): void {
  if (value === '*') return;
  const result = serviceName.safeParse(value);
  if (!result.success) throw new UsageError(`${argument} ${JSON.stringify(value)} is not a service name: it ${result.error.issues[0]!.message} (or * for any service)`);
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
      const notice = (line: string): void => void process.stderr.write(`skein: ${line}\n`);
      let result: IntentionsAnswer;
      if (action === 'default') {
        if ((source !== 'allow' && source !== 'deny') || destination !== undefined) throw new UsageError('usage: skein intention default allow|deny');
        result = await editIntentions(api, (current) => ({ ...current, defaultAction: source }), notice);
        if (flags.output === 'json') return printJson(result);
        process.stdout.write(`default action: ${source}\n`);
        return;
      }
      if (!destination) throw new UsageError(`usage: skein intention ${action} SOURCE DESTINATION`);
      checkRuleService('SOURCE', source);
      checkRuleService('DESTINATION', destination);
      let rewritten = false;
      result = await editIntentions(
        api,
        (current) => {
          const next = withRule(current.rules ?? [], { source, destination, action });
          rewritten = next.rewritten;
          return { ...current, rules: next.rules };
        },
        notice,
      );
      if (rewritten) {
        notice('note: the stored rules were not in precedence order (exact pairs, then one *, then * -> *) or repeated a pair: rewrote them in that order, without the repeats (see skein get intentions)');
      }
      if (flags.output === 'json') return printJson(result);
      process.stdout.write(`${source} -> ${destination}: ${action}\n`);
    }),
  );
}
