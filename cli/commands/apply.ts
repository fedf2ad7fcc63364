/**
 * `skein apply -f FILE`: creates or replaces config resources from a YAML (or JSON) file in
 * the snapshot format of SPEC §4: `services.X` becomes X's policy, `routes.X` its rules,
 * `intentions` the intentions. The whole file is validated before anything is written;
 * then policies go first (routes may name their subsets), routes next, intentions last.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import type { Command } from 'commander';
import { ConfigError, decodeText, validate } from '../../common/config/parse.js';
import { serviceName } from '../../common/config/schema.js';
import { intentionsBody, policyBody, routesBody } from '../../control-plane/state/resources.js';
import { adminClient, printJson, printTable, runAdmin, withAdminFlags, type AdminFlags } from './admin-common.js';

const applyFile = z
  .object({
    version: z.union([z.string(), z.number()]).optional(),
    services: z.record(serviceName, policyBody).optional(),
    routes: z.record(serviceName, routesBody).optional(),
    intentions: intentionsBody.optional(),
  })
  .strict();

type Decoded = { services?: Record<string, unknown>; routes?: Record<string, unknown>; intentions?: unknown };

async function readSource(file: string): Promise<string> {
  if (file !== '-') return readFile(file, 'utf8');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export function registerApply(program: Command): void {
  const command = program
    .command('apply')
    .description('create or replace policies, routes and intentions from a YAML file (snapshot format)')
    .requiredOption('-f, --file <file>', 'YAML or JSON file, - for stdin');
  withAdminFlags(command).action((flags: AdminFlags & { file: string }) =>
    runAdmin(async () => {
      const decoded = decodeText(await readSource(flags.file), flags.file);
      if (decoded === null || typeof decoded !== 'object') throw new ConfigError([`${flags.file}: expected services, routes or intentions`]);
      try {
        validate(applyFile, decoded);
      } catch (err) {
        if (err instanceof ConfigError) throw new Error(`${flags.file} fails validation:\n  ${err.problems.join('\n  ')}`);
        throw err;
      }
      // Written as decoded (not as parsed), so durations stay as the operator wrote them.
      const raw = decoded as Decoded;
      const api = adminClient(flags);
      const results: { kind: string; name: string; snapshotVersion: string | null }[] = [];
      for (const [name, policy] of Object.entries(raw.services ?? {})) {
        const res = await api.put(`/api/v1/services/${name}/policy`, policy);
        results.push({ kind: 'policy', name, snapshotVersion: res.headers.get('skein-snapshot-version') });
      }
      for (const [name, rules] of Object.entries(raw.routes ?? {})) {
        const res = await api.put(`/api/v1/routes/${name}`, rules);
        results.push({ kind: 'routes', name, snapshotVersion: res.headers.get('skein-snapshot-version') });
      }
      if (raw.intentions !== undefined) {
        const res = await api.put('/api/v1/intentions', raw.intentions);
        results.push({ kind: 'intentions', name: '-', snapshotVersion: res.headers.get('skein-snapshot-version') });
      }
      if (flags.output === 'json') return printJson(results);
      printTable(['KIND', 'NAME', 'SNAPSHOT'], results.map((r) => [r.kind, r.name, r.snapshotVersion]));
    }),
  );
}
