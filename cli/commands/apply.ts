/**
 * `skein apply -f FILE`: creates or replaces config resources from a YAML (or JSON) file in
 * the snapshot format of SPEC §4: `services.X` becomes X's policy, `routes.X` its rules,
 * `intentions` the intentions. The file is validated here, then sent whole to the control
 * plane (POST /api/v1/apply), which judges it by the state it leaves behind (subsets
 * included) and writes all of it at once or nothing.
 *
 * A control plane older than that endpoint (404) gets what this command did before it, said
 * on stderr: the file checked whole (POST /api/v1/apply/check, which there replays the
 * writes in order, so a policy dropping a subset the same file's routes stop using is still
 * refused), then policies, routes and intentions written one PUT each; should one still be
 * refused (someone changed the mesh in between), the error says which, and what was and was
 * not applied.
 */
import { z } from 'zod';
import type { Command } from 'commander';
import { ConfigError, decodeText, validate } from '../../common/config/parse.js';
import { applyDocuments } from '../../control-plane/state/resources.js';
import { AdminApiError, type AdminClient } from '../admin-client.js';
import { APPLIED, CHECKED } from '../answers.js';
import { readInputFile } from '../input-file.js';
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

export interface Applied {
  readonly kind: string;
  readonly name: string;
  readonly snapshotVersion: string | null;
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

/** A 422 of the whole-file judgement: nothing was written. */
function doesNotFit(file: string, err: unknown): unknown {
  if (err instanceof AdminApiError && err.status === 422) return new Error(`${file} does not fit the mesh; nothing was written:\n  ${problemsOf(err).join('\n  ')}`);
  return err;
}

/** The admin API answered that it has no such endpoint: a control plane older than it. */
function isMissingEndpoint(err: unknown): boolean {
  return err instanceof AdminApiError && err.status === 404 && err.code === 'not-found';
}

async function checkWhole(api: AdminClient, file: string, raw: Decoded): Promise<void> {
  try {
    await api.post('/api/v1/apply/check', { services: raw.services, routes: raw.routes, intentions: raw.intentions }, CHECKED);
  } catch (err) {
    throw doesNotFit(file, err);
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

/**
 * Applies a validated file: whole, through POST /api/v1/apply; or, against a control plane
 * without it, checked whole and then written document by document (`notice` says so).
 */
export async function applyFileTo(api: AdminClient, file: string, raw: Decoded, notice: (line: string) => void, force = false): Promise<Applied[]> {
  try {
    // Forced, a running canary rollout the file touches is aborted first (else 409, nothing written).
    const res = await api.request('POST', `/api/v1/apply${force ? '?force=true' : ''}`, { body: { services: raw.services, routes: raw.routes, intentions: raw.intentions }, expected: APPLIED });
    for (const service of res.body.abortedCanaries ?? []) notice(`aborted the canary rollout of ${service} to apply ${file} (--force); see skein canary ${service} --status`);
    // Not published, or published during the resync hold after a start (then `heldUntil` and a warning).
    if (res.body.published === false) notice(`warning: ${file} is ${res.body.warning ?? `stored but not published: sidecars keep snapshot ${res.body.snapshotVersion}`}`);
    else if (res.body.warning !== undefined) notice(`warning: ${file} is ${res.body.warning}`);
    return res.body.applied.map((d) => ({ kind: d.kind, name: d.name ?? '-', snapshotVersion: res.body.snapshotVersion }));
  } catch (err) {
    if (!isMissingEndpoint(err)) throw doesNotFit(file, err);
  }
  notice(`${api.baseUrl} has no POST /api/v1/apply (an older control plane): checking ${file} whole, then writing it one document at a time`);
  await checkWhole(api, file, raw);
  return writeAll(api, writesOf(raw));
}

export function registerApply(program: Command): void {
  const command = program
    .command('apply')
    .description('create or replace policies, routes and intentions from a YAML file (snapshot format), all at once')
    .requiredOption('-f, --file <file>', 'YAML or JSON file, - for stdin')
    .option('--force', 'abort a running canary rollout whose routes or subsets the file changes, then apply (without it such a file is refused, nothing written)');
  withAdminFlags(command).action((flags: AdminFlags & { file: string; force?: boolean }) =>
    runAdmin(async () => {
      const decoded = decodeText(await readInputFile(flags.file), flags.file);
      if (decoded === null || decoded === undefined) throw new ConfigError([`${flags.file} is empty (no YAML or JSON document in it): nothing to apply`]);
      if (typeof decoded !== 'object') throw new ConfigError([`${flags.file}: expected services, routes or intentions`]);
      try {
        validate(applyFile, decoded);
      } catch (err) {
        if (err instanceof ConfigError) throw new Error(`${flags.file} fails validation:\n  ${err.problems.join('\n  ')}`);
        throw err;
      }
      const raw = decoded as Decoded;
      if (writesOf(raw).length === 0) throw new ConfigError([`${flags.file} has nothing to apply: expected services, routes or intentions`]);
      const results = await applyFileTo(adminClient(flags), flags.file, raw, (line) => process.stderr.write(`skein: ${line}\n`), flags.force === true);
      if (flags.output === 'json') return printJson(results);
      printTable(['KIND', 'NAME', 'SNAPSHOT'], results.map((r) => [r.kind, r.name, r.snapshotVersion]));
    }),
  );
}
