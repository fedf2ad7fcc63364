/**
 * Where each Kubernetes workload kind keeps its pod template, and injection of one parsed
 * object (a workload, an unrelated object passed through, or a `List` of them). Used on plain
 * data by both the CLI and the admission webhook.
 */
import { InjectError, describeDocument } from './errors.js';
import { ANNOTATIONS, type InjectOptions } from './options.js';
import { injectPodTemplate, isObj, stringMap } from './pod.js';
import type { ServiceParams } from './sidecar-container.js';

type Obj = Record<string, unknown>;
export type Path = ReadonlyArray<string | number>;

/** Kind → its API group/version and the path of its pod template (`[]`: the object is the pod). */
const WORKLOADS: Record<string, { apiVersion: string; template: Path }> = {
  Pod: { apiVersion: 'v1', template: [] },
  Deployment: { apiVersion: 'apps/v1', template: ['spec', 'template'] },
  StatefulSet: { apiVersion: 'apps/v1', template: ['spec', 'template'] },
  DaemonSet: { apiVersion: 'apps/v1', template: ['spec', 'template'] },
  ReplicaSet: { apiVersion: 'apps/v1', template: ['spec', 'template'] },
  Job: { apiVersion: 'batch/v1', template: ['spec', 'template'] },
  CronJob: { apiVersion: 'batch/v1', template: ['spec', 'jobTemplate', 'spec', 'template'] },
};

export const WORKLOAD_KINDS = Object.keys(WORKLOADS);

/** One workload's outcome; `spec` (the new pod spec, at `specPath`) only when injected. */
export interface WorkloadOutcome {
  readonly what: string;
  readonly status: 'injected' | 'opted-out' | 'already-injected';
  readonly specPath: Path;
  readonly spec?: Obj;
  readonly params?: ServiceParams;
  /** Said to the user whatever the outcome, e.g. settings that are ignored. */
  readonly warning?: string;
}

/** What steers injection: read from the pod template only. */
const SETTINGS = { annotations: Object.values(ANNOTATIONS), labels: [ANNOTATIONS.inject, 'app', 'app.kubernetes.io/name', 'version'] } as const;

/**
 * Settings written on a workload's own metadata and not on its pod template: its pods never
 * carry them, so the webhook, which sees only pods, cannot read them, and neither does the
 * CLI. Said, since they were honoured once and look as if they count.
 */
function ignoredSettings(kind: string, owner: unknown, template: Obj, templateField: string): string | undefined {
  const fields = (['annotations', 'labels'] as const).flatMap((key) => {
    const own = stringMap(owner, key);
    const pods = stringMap(template.metadata, key);
    return SETTINGS[key].filter((name) => name in own && !(name in pods)).map((name) => `metadata.${key}.${name}`);
  });
  if (fields.length === 0) return undefined;
  return `${fields.join(', ')} ${fields.length === 1 ? 'is' : 'are'} set on the ${kind} itself, not on its pod template, and ignored: injection reads ${templateField}.metadata, all its pods (and the webhook) see; move ${fields.length === 1 ? 'it' : 'them'} there`;
}

export function getIn(obj: unknown, path: Path): unknown {
  return path.reduce<unknown>((at, key) => (isObj(at) || Array.isArray(at) ? (at as Record<string | number, unknown>)[key] : undefined), obj);
}

function dotted(path: Path): string {
  return path.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? k : `.${k}`)).join('');
}

/**
 * Injects every workload in `obj` (itself, or each item of a List). Returns one outcome per
 * workload found; objects of other kinds (Service, ConfigMap, ...) yield none and pass through.
 * `where` is the document's position in its file, or how errors should name the object.
 */
export function injectObject(obj: unknown, where: number | string, options: InjectOptions): WorkloadOutcome[] {
  // A file names documents by position; the webhook names the object it was sent.
  const document = typeof where === 'string' ? where : describeDocument(where, isObj(obj) ? obj.kind : undefined, isObj(obj) && isObj(obj.metadata) ? obj.metadata.name : undefined);
  if (!isObj(obj)) throw new InjectError('unknown-kind', document, '', 'expected a Kubernetes object (a mapping with apiVersion and kind)');
  return injectAt(obj, [], document, options);
}

function injectAt(obj: Obj, base: Path, document: string, options: InjectOptions): WorkloadOutcome[] {
  const field = (path: Path): string => dotted([...base, ...path]);
  const { kind, apiVersion } = obj;
  if (typeof kind !== 'string' || typeof apiVersion !== 'string' || !kind || !apiVersion) {
    throw new InjectError('unknown-kind', document, field([typeof kind === 'string' && kind ? 'apiVersion' : 'kind']), 'expected a Kubernetes object with apiVersion and kind');
  }
  if (kind === 'List' || (kind.endsWith('List') && Array.isArray(obj.items))) {
    if (!Array.isArray(obj.items)) throw new InjectError('invalid-field', document, field(['items']), 'a List needs an items array');
    return obj.items.flatMap((item, i) => {
      if (!isObj(item)) throw new InjectError('unknown-kind', document, field(['items', i]), 'expected a Kubernetes object');
      return injectAt(item, [...base, 'items', i], document, options);
    });
  }
  const metadata = obj.metadata;
  const what = `${kind.toLowerCase()}/${isObj(metadata) && typeof metadata.name === 'string' ? metadata.name : '(unnamed)'}`;
  const workload = WORKLOADS[kind];
  if (!workload) {
    // A kind we do not know that carries a pod template would silently go without a sidecar.
    // Opted out on the object itself, or where known kinds (and the webhook, on its pods) read it: the pod template.
    const templateMeta = getIn(obj, ['spec', 'template', 'metadata']);
    const optedOut = [stringMap(metadata, 'annotations'), stringMap(templateMeta, 'annotations'), stringMap(templateMeta, 'labels')].some((m) => m[ANNOTATIONS.inject] === 'false');
    if (!optedOut && isObj(getIn(obj, ['spec', 'template', 'spec'])) && Array.isArray(getIn(obj, ['spec', 'template', 'spec', 'containers']))) {
      throw new InjectError('unknown-kind', document, field(['kind']),
        `unknown workload kind ${apiVersion} ${kind}: Skein injects ${WORKLOAD_KINDS.join(', ')}; set annotation ${ANNOTATIONS.inject}: "false" to pass it through`);
    }
    return [];
  }
  if (apiVersion !== workload.apiVersion) {
    throw new InjectError('unknown-kind', document, field(['apiVersion']), `unknown kind ${apiVersion} ${kind}: expected apiVersion ${workload.apiVersion}`);
  }
  const template = getIn(obj, workload.template);
  if (!isObj(template)) throw new InjectError('invalid-field', document, field(workload.template), 'a pod template is required');
  const warning = workload.template.length === 0 ? undefined : ignoredSettings(kind, metadata, template, field(workload.template));
  const result = withWarning(warning, () => injectPodTemplate({ metadata: template.metadata, spec: template.spec, document, field: field(workload.template) }, options));
  const specPath = [...base, ...workload.template, 'spec'];
  if (result.status !== 'injected') return [{ what, status: result.status, specPath, warning }];
  return [{ what, status: 'injected', specPath, spec: result.spec, params: result.params, warning }];
}

/** A refusal keeps the warning: a service name only on the Deployment is why there is none. */
function withWarning<T>(warning: string | undefined, inject: () => T): T {
  try {
    return inject();
  } catch (err) {
    if (!warning || !(err instanceof InjectError)) throw err;
    throw new InjectError(err.code, err.document, err.field, `${err.detail} (${warning})`);
  }
}

/** The object with every injected pod spec put in place (a copy; the input is not changed). */
export function applyOutcomes(obj: unknown, outcomes: readonly WorkloadOutcome[]): unknown {
  // Unlike structuredClone, a JSON copy shares no object between two places (YAML aliases make
  // them share one): a pod spec set for one workload must not land in another.
  const copy = JSON.parse(JSON.stringify(obj)) as unknown;
  for (const o of outcomes) {
    if (!o.spec) continue;
    const parent = getIn(copy, o.specPath.slice(0, -1)) as Obj;
    parent[o.specPath.at(-1) as string] = o.spec;
  }
  return copy;
}
