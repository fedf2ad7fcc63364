/** `skein token create SERVICE`: a bootstrap token, printed alone so `--token "$(skein token create orders)"` works. */
import { InvalidArgumentError, type Command } from 'commander';
import { tokenRequest } from '../../control-plane/admin-api/tokens-routes.js';
import { ISSUED_TOKEN, NO_CONTENT } from '../answers.js';
import { checkFlagValues, parseDurationFlag, parseServiceName } from '../flag-values.js';
import { adminClient, printJson, runAdmin, withAdminFlags, type AdminFlags } from './admin-common.js';

/** A token to revoke: a blank one is no token, a usage error (exit 2) rather than the control plane's 422. */
function parseTokenArgument(value: string): string {
  if (value.trim() === '') throw new InvalidArgumentError('a token is never blank: give the one `skein token create` printed');
  return value;
}

export function registerToken(program: Command): void {
  const token = program.command('token').description('bootstrap tokens for service identities');
  const create = token
    .command('create')
    .description('issue a bootstrap token for a service (prints the token alone)')
    .argument('<service>', 'service the token lets a sidecar act as', parseServiceName)
    .option('--ttl <duration>', 'how long the token is valid, 1s to 365 days', parseDurationFlag, 24 * 3_600_000);
  const revoke = token
    .command('revoke')
    .description('revoke a bootstrap token: no sidecar can get a certificate with it any more')
    .argument('<token>', 'the token to revoke', parseTokenArgument);
  withAdminFlags(revoke, false).action((value: string, flags: AdminFlags) =>
    runAdmin(async () => {
      await adminClient(flags).post('/api/v1/tokens/revoke', { token: value }, NO_CONTENT);
      process.stderr.write('token revoked\n');
    }),
  );
  withAdminFlags(create).action((service: string, flags: AdminFlags & { ttl: number }) =>
    runAdmin(async () => {
      const body = { service, ttl: flags.ttl };
      checkFlagValues(tokenRequest, body, { ttl: '--ttl' });
      const issued = (await adminClient(flags).post('/api/v1/tokens', body, ISSUED_TOKEN)).body;
      if (flags.output === 'json') printJson(issued);
      else process.stdout.write(`${issued.token}\n`);
    }),
  );
}
