/**
 * Renders a kustomization offline, for the manifest tests: the subset of kustomize the k8s/ folder
 * uses, implemented to kustomize's rules, and refusing any field it does not implement (so a
 * kustomization can never pass the tests by being half understood).
 *
 * - `resources`: YAML files (several documents each) and directories holding a kustomization.
 * - `configMapGenerator` with `files` (key = file name) or `literals`, under
 *   `generatorOptions.disableNameSuffixHash: true` (names are not hashed, so references stay as written).
 * - `patches` with `path`: strategic-merge patches, each targeting the resource of its kind and name.
 *   Lists merge by their Kubernetes patch merge key (containers and env by name, volume mounts by
 *   mount path, ...); other lists are replaced; `null` deletes a field.
 * - `namespace`: set on every namespaced resource.
 * - `labels` with `pairs` (and `includeSelectors: false`, the default): added to `metadata.labels`.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
};

export class KustomizeError extends Error {
  override name = 'KustomizeError';
}

const KNOWN_FIELDS = new Set([
  'apiVersion',
  'kind',
  'resources',
  'namespace',
  'labels',
  'patches',
  'configMapGenerator',
  'generatorOptions',
]);

/** Kinds without a namespace (of those a kustomization here could hold). */
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'PersistentVolume',
  'StorageClass',
  'PriorityClass',
  'IngressClass',
]);

/** Patch merge keys of the lists the manifests patch, from the Kubernetes API's `x-kubernetes-patch-merge-key`. */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  imagePullSecrets: 'name',
  topologySpreadConstraints: 'topologyKey',
};

/** Every YAML document of a file, each a non-null object. */
export function readYamlDocuments(file: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'), { merge: true });
  const out: unknown[] = [];
  for (const d of docs) {
    if (d.errors.length > 0) throw new KustomizeError(`${file}: ${d.errors[0]!.message}`);
    const v = d.toJS();
    if (v !== null && v !== undefined) out.push(v);
  }
  return out;
}

function asObject(v: unknown, where: string): K8sObject {
  const o = v as K8sObject;
  if (typeof o !== 'object' || o === null || typeof o.apiVersion !== 'string' || typeof o.kind !== 'string') {
    throw new KustomizeError(`${where}: not a Kubernetes object (apiVersion and kind)`);
  }
  if (typeof o.metadata?.name !== 'string' || o.metadata.name === '') {
    throw new KustomizeError(`${where}: ${o.kind} without metadata.name`);
  }
  return o;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Kubernetes strategic merge of `patch` into `target` (returns a new value). */
export function strategicMerge(target: unknown, patch: unknown, field = ''): unknown {
  if (isPlainObject(patch) && '$patch' in patch) {
    throw new KustomizeError(`$patch directives are not supported (at ${field || 'the root'})`);
  }
  if (isPlainObject(target) && isPlainObject(patch)) {
    const out: Record<string, unknown> = { ...target };
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete out[k];
      else out[k] = k in target ? strategicMerge(target[k], v, k) : v;
    }
    return out;
  }
  const key = MERGE_KEYS[field];
  if (Array.isArray(target) && Array.isArray(patch) && key) {
    const out = [...target];
    for (const item of patch) {
      if (!isPlainObject(item) || !(key in item)) throw new KustomizeError(`${field}: every item needs its ${key}`);
      const i = out.findIndex((t) => isPlainObject(t) && t[key] === item[key]);
      if (i >= 0) out[i] = strategicMerge(out[i], item, '');
      else out.push(item);
    }
    return out;
  }
  return patch;
}

interface Kustomization {
  resources?: string[];
  namespace?: string;
  labels?: Array<{ pairs: Record<string, string>; includeSelectors?: boolean; [k: string]: unknown }>;
  patches?: Array<{ path?: string; [k: string]: unknown }>;
  configMapGenerator?: Array<{ name: string; files?: string[]; literals?: string[]; [k: string]: unknown }>;
  generatorOptions?: { disableNameSuffixHash?: boolean; [k: string]: unknown };
}

/** The resources a kustomization directory renders to, in order. */
export function renderKustomization(dir: string): K8sObject[] {
  const file = join(dir, 'kustomization.yaml');
  const [raw, ...more] = readYamlDocuments(file);
  if (more.length > 0 || !isPlainObject(raw)) throw new KustomizeError(`${file}: expected one YAML object`);
  const k = raw as Kustomization;
  for (const f of Object.keys(k)) {
    if (!KNOWN_FIELDS.has(f)) throw new KustomizeError(`${file}: field ${f} is not supported by this renderer`);
  }
  if (raw.apiVersion !== 'kustomize.config.k8s.io/v1beta1' || raw.kind !== 'Kustomization') {
    throw new KustomizeError(`${file}: expected apiVersion kustomize.config.k8s.io/v1beta1, kind Kustomization`);
  }

  let objects: K8sObject[] = [];
  for (const r of k.resources ?? []) {
    const path = resolve(dir, r);
    if (statSync(path).isDirectory()) objects.push(...renderKustomization(path));
    else objects.push(...readYamlDocuments(path).map((d, i) => asObject(d, `${path} document ${i + 1}`)));
  }

  if (k.configMapGenerator?.length) {
    const opts = k.generatorOptions ?? {};
    for (const f of Object.keys(opts)) {
      if (f !== 'disableNameSuffixHash') throw new KustomizeError(`${file}: generatorOptions.${f} is not supported`);
    }
    if (opts.disableNameSuffixHash !== true) {
      throw new KustomizeError(
        `${file}: generated names must not be hashed (generatorOptions.disableNameSuffixHash: true)`,
      );
    }
    for (const g of k.configMapGenerator) {
      for (const f of Object.keys(g)) {
        if (!['name', 'files', 'literals'].includes(f))
          throw new KustomizeError(`${file}: configMapGenerator.${f} is not supported`);
      }
      const data: Record<string, string> = {};
      for (const f of g.files ?? []) data[basename(f)] = readFileSync(resolve(dir, f), 'utf8');
      for (const l of g.literals ?? []) {
        const eq = l.indexOf('=');
        if (eq <= 0) throw new KustomizeError(`${file}: literal ${JSON.stringify(l)} is not key=value`);
        data[l.slice(0, eq)] = l.slice(eq + 1);
      }
      objects.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: g.name }, data });
    }
  }

  for (const p of k.patches ?? []) {
    const keys = Object.keys(p);
    if (keys.length !== 1 || typeof p.path !== 'string') {
      throw new KustomizeError(`${file}: only patches with a path alone are supported, got ${JSON.stringify(p)}`);
    }
    const path = resolve(dir, p.path);
    const docs = readYamlDocuments(path);
    if (docs.length !== 1) throw new KustomizeError(`${path}: a patch file holds exactly one patch`);
    const patch = asObject(docs[0], path);
    const matches = objects.filter((o) => o.kind === patch.kind && o.metadata.name === patch.metadata.name);
    if (matches.length !== 1) {
      throw new KustomizeError(
        `${path}: targets ${patch.kind}/${patch.metadata.name}, found ${matches.length} such resources`,
      );
    }
    objects = objects.map((o) => (o === matches[0] ? (strategicMerge(o, patch) as K8sObject) : o));
  }

  if (k.namespace) {
    const ns = k.namespace;
    objects = objects.map((o) =>
      CLUSTER_SCOPED.has(o.kind) ? o : { ...o, metadata: { ...o.metadata, namespace: ns } },
    );
  }
  for (const l of k.labels ?? []) {
    for (const f of Object.keys(l)) {
      if (f !== 'pairs' && f !== 'includeSelectors') throw new KustomizeError(`${file}: labels.${f} is not supported`);
    }
    if (l.includeSelectors) throw new KustomizeError(`${file}: labels.includeSelectors is not supported`);
    objects = objects.map((o) => ({ ...o, metadata: { ...o.metadata, labels: { ...o.metadata.labels, ...l.pairs } } }));
  }

  const seen = new Set<string>();
  for (const o of objects) {
    const id = `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    if (seen.has(id)) throw new KustomizeError(`${file}: ${id} is defined twice`);
    seen.add(id);
  }
  return objects;
}

/** Every YAML file under `dir`, recursively (for checking each file parses). */
export function yamlFilesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return yamlFilesUnder(p);
    return /\.ya?ml$/.test(e.name) ? [p] : [];
  });
}
