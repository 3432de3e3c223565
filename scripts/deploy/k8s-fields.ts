/**
 * Unknown fields in a Kubernetes object: what the API server's strict field validation
 * (`kubectl apply --validate=strict`) rejects and the OpenAPI schemas let through (they allow extra
 * properties, so `readinesProbe:` would pass them). The field lists come from @kubernetes/client-node's
 * generated models, which mirror the same OpenAPI definitions.
 */
import * as k8s from '@kubernetes/client-node';

interface Attribute {
  baseName: string;
  type: string;
}
type Models = Record<string, { attributeTypeMap?: Attribute[] } | undefined>;
const models = k8s as unknown as Models;

/** `V1Deployment` for apps/v1 Deployment, `V1Service` for v1 Service, ... */
export function modelName(apiVersion: string, kind: string): string {
  const version = apiVersion.split('/').pop() ?? '';
  return `${version.charAt(0).toUpperCase()}${version.slice(1)}${kind}`;
}

const SCALARS = new Set(['string', 'number', 'boolean', 'Date', 'IntOrString', 'any']);

/** Paths of the fields of `value` that its model (e.g. `V1Deployment`) does not have. */
export function unknownFields(value: unknown, type: string, path = ''): string[] {
  if (value === null || value === undefined || SCALARS.has(type)) return [];
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(v, array[1]!, `${path}[${i}]`)) : [];
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    return typeof value === 'object'
      ? Object.entries(value as object).flatMap(([k, v]) => unknownFields(v, map[1]!, `${path}.${k}`))
      : [];
  }
  const attrs = models[type]?.attributeTypeMap;
  if (!attrs) throw new Error(`no model ${type} (at ${path || 'the root'})`);
  if (typeof value !== 'object' || Array.isArray(value)) return [];
  const byName = new Map(attrs.map((a) => [a.baseName, a.type]));
  return Object.entries(value as object).flatMap(([k, v]) => {
    const t = byName.get(k);
    const p = path ? `${path}.${k}` : k;
    return t === undefined ? [p] : unknownFields(v, t, p);
  });
}
