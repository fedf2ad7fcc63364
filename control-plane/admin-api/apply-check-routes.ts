/**
 * `POST /api/v1/apply/check`: checks a whole `skein apply` file against the mesh before the
 * CLI writes any of it, so a file the server would refuse halfway (a route splitting to a
 * subset nobody declares) is refused whole. The check runs MeshConfig's own writes, in the
 * CLI's order, on a store that keeps writes to itself: the same rules as the real writes,
 * each seeing what the file's earlier documents would have left behind.
 */
import { z } from 'zod';
import { ConfigError, validate } from '../../common/config/parse.js';
import { serviceName } from '../../common/config/schema.js';
import type { Discovery } from '../registry/discovery.js';
import { MeshConfig } from '../state/mesh-config.js';
import { intentionsBody, keys, policyBody, routesBody } from '../state/resources.js';
import type { ConfigStore, StoreEntry } from '../store/store.js';
import type { Router } from './router.js';

/** The documents of an apply file: `services.X` is X's policy, `routes.X` its rules, `intentions` the intentions. */
export const applyDocuments = z
  .object({
    services: z.record(serviceName, policyBody).optional(),
    routes: z.record(serviceName, routesBody).optional(),
    intentions: intentionsBody.optional(),
  })
  .strict();

type Documents = { services?: Record<string, unknown>; routes?: Record<string, unknown>; intentions?: unknown };

/** Reads through to the real store; writes stay here and are dropped with it. */
class DryRunStore implements ConfigStore {
  private readonly written = new Map<string, StoreEntry>();

  constructor(private readonly real: ConfigStore) {}

  get location(): string {
    return `a dry run over ${this.real.location}`;
  }

  async get(key: string): Promise<StoreEntry | undefined> {
    return this.written.get(key) ?? this.real.get(key);
  }

  async list(prefix: string): Promise<StoreEntry[]> {
    const real = (await this.real.list(prefix)).filter((e) => !this.written.has(e.key));
    return [...real, ...[...this.written.values()].filter((e) => e.key.startsWith(prefix))];
  }

  async put(key: string, value: unknown): Promise<StoreEntry> {
    const entry = { key, value, revision: ((await this.get(key))?.revision ?? 0) + 1 };
    this.written.set(key, entry);
    return entry;
  }

  delete(key: string): Promise<boolean> {
    return Promise.reject(new Error(`a dry run of apply never deletes (${key})`));
  }

  transaction(): Promise<StoreEntry[]> {
    return Promise.reject(new Error('a dry run of apply writes one document at a time'));
  }

  watch(): () => void {
    return () => undefined;
  }

  async close(): Promise<void> {}
}

/** A problem of one document, placed in the file: `[0].split.v9: …` of routes.catalog → `routes.catalog[0].split.v9: …`. */
function inFile(section: string, problem: string): string {
  if (problem.startsWith('(root)')) return `${section}${problem.slice('(root)'.length)}`;
  return problem.startsWith('[') ? `${section}${problem}` : `${section}.${problem}`;
}

export function registerApplyCheckRoute(router: Router, deps: { readonly store: ConfigStore; readonly discovery: Discovery }): void {
  router.add({
    method: 'POST',
    path: '/api/v1/apply/check',
    summary: 'Check a whole apply file ({services, routes, intentions}) as its writes would be checked, in their order, writing nothing; 422 lists every problem by its place in the file',
    auth: true,
    requestBody: applyDocuments,
    handler: async (ctx) => {
      // Checked as written (not as parsed), since that is what the writes will send.
      const file = (await ctx.body()) as Documents;
      validate(applyDocuments, file);
      const store = new DryRunStore(deps.store);
      const config = new MeshConfig(store, deps.discovery);
      const problems: string[] = [];
      // A refused document still stands in for itself, so later ones are checked against the file, not the old state.
      const attempt = async (section: string, key: string, value: unknown, write: () => Promise<unknown>): Promise<void> => {
        try {
          await write();
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          problems.push(...err.problems.map((p) => inFile(section, p)));
          await store.put(key, value);
        }
      };
      for (const [name, policy] of Object.entries(file.services ?? {})) {
        await attempt(`services.${name}`, keys.policy(name), policy, () => config.putPolicy(name, policy));
      }
      for (const [name, rules] of Object.entries(file.routes ?? {})) {
        await attempt(`routes.${name}`, keys.routes(name), rules, () => config.putRoutes(name, rules));
      }
      if (file.intentions !== undefined) await attempt('intentions', keys.intentions, file.intentions, () => config.putIntentions(file.intentions));
      if (problems.length > 0) throw new ConfigError(problems);
      return { body: { ok: true } };
    },
  });
}
