/**
 * `skein apply -f FILE`: creates or replaces config resources from a YAML (or JSON) file in
 * the snapshot format of SPEC §4: `services.X` becomes X's policy, `routes.X` its rules,
 * `intentions` the intentions. The file is validated here, then checked whole by the control
 * plane (POST /api/v1/apply/check: subsets included) before anything is written; then
 * policies go first (routes may name their subsets), routes next, intentions last. Each is
 * its own write, so should one still be refused (someone changed the mesh in between), the
 * error says which, and what was and was not applied.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import type { Command } from 'commander';
import { ConfigError, decodeText, validate } from '../../common/config/parse.js';
import { applyDocuments } from '../../control-plane/admin-api/apply-check-routes.js';
import { AdminApiError, type AdminClient } from '../admin-client.js';
import { adminClient, printJson, printTable, runAdmin, withAdminFlags, type AdminFlags } from './admin-common.js';

const applyFile = applyDocuments.extend({ version: z.union([z.string(), z.number()]).optional() });

type Decoded = { services?: Record<string, unknown>; routes?: Record<string, unknown>; intentions?: unknown };

interface Write {
  readonly kind: 'policy' | 'routes' | 'intentions';
  readonly name: string;
  /** Where it sits in the file, e.g. `routes.catalog`. */
  readonly section: string;
  readonly path: string;
  readonly body: unknown;
}

interface Applied {
  readonly kind: string;
  readonly name: string;
  readonly snapshotVersion: string | null;
}

async function readSource(file: string): Promise<string> {
  if (file !== '-') return readFile(file, 'utf8');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The writes of a file, in the order they are made. Bodies are as decoded (not as parsed), so durations stay as the operator wrote them. */
export function writesOf(raw: Decoded): Write[] {
  return [
    ...Object.entries(raw.services ?? {}).map(([name, body]): Write => ({ kind: 'policy', name, section: `services.${name}`, path: `/api/v1/services/${name}/policy`, body })),
    ...Object.entries(raw.routes ?? {}).map(([name, body]): Write => ({ kind: 'routes', name, section: `routes.${name}`, path: `/api/v1/routes/${name}`, body })),
    ...(raw.intentions === undefined ? [] : [{ kind: 'intentions', name: '-', section: 'intentions', path: '/api/v1/intentions', body: raw.intentions } as const]),
  ];
}

function problemsOf(err: AdminApiError): readonly string[] {
  return err.problems.length > 0 ? err.problems : [err.message];
}

async function checkWhole(api: AdminClient, file: string, raw: Decoded): Promise<void> {
  try {
    await api.post('/api/v1/apply/check', { services: raw.services, routes: raw.routes, intentions: raw.intentions });
  } catch (err) {
    if (err instanceof AdminApiError && err.status === 422) throw new Error(`${file} does not fit the mesh; nothing was written:\n  ${problemsOf(err).join('\n  ')}`);
    throw err;
  }
}

export async function writeAll(api: AdminClient, writes: readonly Write[]): Promise<Applied[]> {
  const applied: Applied[] = [];
  for (const [i, write] of writes.entries()) {
    try {
      const res = await api.put(write.path, write.body);
      applied.push({ kind: write.kind, name: write.name, snapshotVersion: res.headers.get('skein-snapshot-version') });
    } catch (err) {
      if (!(err instanceof AdminApiError)) throw err;
      const done = applied.map((a) => `${a.kind} ${a.name} (snapshot ${a.snapshotVersion})`).join(', ') || 'nothing';
      const left = writes.slice(i).map((w) => w.section).join(', ');
      throw new Error(
        `${write.section} was refused${err.status ? ` (${err.status} ${err.code})` : ''}:\n  ${problemsOf(err).join('\n  ')}\napplied: ${done}\nnot applied: ${left}`,
      );
    }
  }
  return applied;
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
      const raw = decoded as Decoded;
      const api = adminClient(flags);
      await checkWhole(api, flags.file, raw);
      const results = await writeAll(api, writesOf(raw));
      if (flags.output === 'json') return printJson(results);
      printTable(['KIND', 'NAME', 'SNAPSHOT'], results.map((r) => [r.kind, r.name, r.snapshotVersion]));
    }),
  );
}
