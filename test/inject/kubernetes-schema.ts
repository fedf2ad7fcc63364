/**
 * Offline validation of Kubernetes objects against the API's OpenAPI schemas, as shipped
 * (compiled to validators) by the kubernetes-models package: `apiVersion` and `kind` name
 * the model module, e.g. apps/v1 Deployment → kubernetes-models/apps/v1/Deployment.
 */
interface Model {
  validate(): void;
}

type ModelClass = new (data: unknown) => Model;

export async function validateKubernetesObject(obj: unknown, where = 'object'): Promise<void> {
  if (typeof obj !== 'object' || obj === null) throw new Error(`${where}: not an object`);
  const { apiVersion, kind, items } = obj as { apiVersion?: string; kind?: string; items?: unknown[] };
  if (!apiVersion || !kind) throw new Error(`${where}: apiVersion and kind are required`);
  if (kind === 'List') {
    for (const [i, item] of (items ?? []).entries()) await validateKubernetesObject(item, `${where}.items[${i}]`);
    return;
  }
  let Model: ModelClass;
  try {
    const specifier = `kubernetes-models/${apiVersion}/${kind}`;
    const mod = (await import(/* @vite-ignore */ specifier)) as Record<string, ModelClass>;
    Model = mod[kind]!;
  } catch {
    throw new Error(`${where}: no schema for ${apiVersion} ${kind}`);
  }
  try {
    new Model(obj).validate();
  } catch (err) {
    throw new Error(`${where} (${kind}): ${(err as Error).message}`);
  }
}
