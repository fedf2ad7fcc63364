/**
 * YAML lets workloads share nodes (`spec: *podspec`, `template: *tpl`, `<<: *base`), but each
 * workload gets a sidecar of its own. Before a pod spec in a parsed document is edited, the
 * way to it is made its own: an alias on the way becomes a copy of what it names, a key a
 * merge provides becomes an own key holding a copy, and aliases elsewhere that name a node
 * about to change (or an anchor inside a value about to be replaced) become copies of it. An
 * edit then never shows through in another workload, and no alias is left without its anchor.
 */
import { Pair, Scalar, isAlias, isCollection, isMap, isPair, isScalar, isSeq, visit, type Document, type Node, type YAMLMap } from 'yaml';
import type { Path } from './workloads.js';

/** The merge key `<<`, a symbol once the parser resolved it as one. */
function isMergeKey(key: unknown): boolean {
  const value = isScalar(key) ? key.value : key;
  return value === '<<' || (typeof value === 'symbol' && value.description === '<<');
}

function ownPair(map: YAMLMap, key: string | number): Pair | undefined {
  return map.items.find((p) => !isMergeKey(p.key) && (isScalar(p.key) ? p.key.value : p.key) === key);
}

/** `node`, or what it names when it is an alias. */
function target(doc: Document, node: unknown): unknown {
  return isAlias(node) ? node.resolve(doc) : node;
}

/** A deep copy without anchors: a copy must not take over the name that later aliases refer to. */
function copyOf(node: unknown): Node {
  const copy = (node as Node).clone() as Node;
  visit(copy, { Node: (_key, n) => { if (!isAlias(n)) n.anchor = undefined; } });
  return copy;
}

/** The value `key` gets from the merges of `map` (`<<: *base`, `<<: [*a, *b]`): the first source holding it wins. */
function mergedValue(doc: Document, map: YAMLMap, key: string | number): unknown {
  for (const pair of map.items) {
    if (!isMergeKey(pair.key)) continue;
    const value = target(doc, pair.value);
    for (const source of isSeq(value) ? value.items.map((s) => target(doc, s)) : [value]) {
      if (!isMap(source)) continue;
      const found = ownPair(source, key)?.value ?? mergedValue(doc, source, key);
      if (found !== undefined) return target(doc, found);
    }
  }
  return undefined;
}

/** Every alias elsewhere in the document that names `node` becomes a copy of it. */
function unshare(doc: Document, node: Node): void {
  if (isAlias(node) || !node.anchor) return;
  const found: Array<{ parent: unknown; key: number | 'key' | 'value' | null }> = [];
  visit(doc, {
    Alias: (key, alias, path) => {
      // resolve() walks the whole document: only aliases of the same name can name this node.
      if (alias.source === node.anchor && alias.resolve(doc) === node) found.push({ parent: path.at(-1), key: key as number | 'key' | 'value' | null });
    },
  });
  for (const { parent, key } of found) {
    if (isPair(parent) && (key === 'key' || key === 'value')) parent[key] = copyOf(node);
    else if (isCollection(parent) && typeof key === 'number') parent.items[key] = copyOf(node);
  }
}

/**
 * Makes the node at `path` (a pod spec) the document's own, and safe to change: see above.
 * `replaced` are the keys under it whose values are about to be replaced.
 */
export function unshareForEdit(doc: Document, path: Path, replaced: readonly string[]): void {
  const along: Node[] = [];
  let node = doc.contents as unknown;
  for (const key of path) {
    if (isSeq(node) && typeof key === 'number') {
      if (isAlias(node.items[key])) node.items[key] = copyOf(target(doc, node.items[key]));
      node = node.items[key];
    } else if (isMap(node)) {
      let pair = ownPair(node, key);
      if (!pair) {
        pair = new Pair(new Scalar(key), copyOf(mergedValue(doc, node, key)));
        node.items.push(pair);
      } else if (isAlias(pair.value)) {
        pair.value = copyOf(target(doc, pair.value));
      }
      node = pair.value;
    }
    along.push(node as Node);
  }
  for (const n of along) unshare(doc, n);
  if (!isMap(node)) return;
  for (const key of replaced) {
    const old = ownPair(node, key)?.value;
    if (!isCollection(old) && !isScalar(old)) continue;
    const anchored: Node[] = [];
    visit(old, { Node: (_key, n) => { if (!isAlias(n) && n.anchor) anchored.push(n); } });
    for (const n of anchored) unshare(doc, n);
  }
}
