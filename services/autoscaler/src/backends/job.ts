/**
 * Worker Jobs from the template in `k8s/base/autoscaler/worker-job.yaml` (mounted into the
 * autoscaler's pod from a ConfigMap). The template holds everything a deployment decides (image,
 * resources, env from the ConfigMap, security context); the autoscaler adds what a pool decides:
 * name, labels, parallelism, the service to run, its region, idle period and instance id.
 *
 * A worker Job is a work-queue Job (parallelism set, completions unset): its pods run side by side,
 * each exits 0 when it has been idle long enough, and the Job completes when they all have. The
 * template's `ttlSecondsAfterFinished` then removes it.
 */
import { readFileSync } from 'node:fs';
import type { V1Container, V1EnvVar, V1Job } from '@kubernetes/client-node';
import { ConfigError } from '@ppc/lib/errors';
import { parse } from 'yaml';
import type { PoolSpec } from '../config.ts';

export const WORKER_CONTAINER = 'worker';
export const labels = {
  managedBy: 'app.kubernetes.io/managed-by',
  component: 'app.kubernetes.io/component',
  partOf: 'app.kubernetes.io/part-of',
  pool: 'ppc-robot.io/pool',
  region: 'ppc-robot.io/region',
} as const;
export const MANAGED_BY = 'ppc-autoscaler';
/** Selects every Job and pod this autoscaler made. */
export const MANAGED_SELECTOR = `${labels.managedBy}=${MANAGED_BY}`;

const TEMPLATE_VAR = 'PPC_AUTOSCALER_KUBE_JOB_TEMPLATE';

/** Checks the parts of a template the autoscaler relies on; a problem names the variable and the field. */
export function checkJobTemplate(doc: unknown, where: string): V1Job {
  const fail = (why: string): never => {
    throw new ConfigError(TEMPLATE_VAR, where, `a batch/v1 Job template: ${why}`);
  };
  if (typeof doc !== 'object' || doc === null) return fail('the file is not a YAML object');
  const job = doc as V1Job;
  if (job.apiVersion !== 'batch/v1' || job.kind !== 'Job') return fail('apiVersion must be batch/v1 and kind Job');
  const pod = job.spec?.template?.spec;
  if (!pod) return fail('spec.template.spec is missing');
  if (pod.restartPolicy !== 'Never' && pod.restartPolicy !== 'OnFailure') {
    return fail('spec.template.spec.restartPolicy must be Never or OnFailure');
  }
  if (!pod.containers?.some((c) => c.name === WORKER_CONTAINER)) {
    return fail(`spec.template.spec.containers needs a container named "${WORKER_CONTAINER}"`);
  }
  if (job.spec?.completions !== undefined) return fail('spec.completions must be unset (a work-queue Job)');
  return job;
}

export function loadJobTemplate(path: string): V1Job {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(TEMPLATE_VAR, path, `a readable file (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw new ConfigError(TEMPLATE_VAR, path, `valid YAML (${(err as Error).message.split('\n')[0]})`);
  }
  return checkJobTemplate(doc, path);
}

/** A Job name: the pool, then time and randomness, within the 63 characters of a label value. */
export function jobName(pool: string, now: number, random: string): string {
  return `${pool}-${now.toString(36).slice(-6)}${random}`.slice(0, 63).replace(/-+$/, '');
}

function setEnv(env: V1EnvVar[] | undefined, add: V1EnvVar[]): V1EnvVar[] {
  const names = new Set(add.map((e) => e.name));
  return [...(env ?? []).filter((e) => !names.has(e.name)), ...add];
}

export interface JobRequest {
  pool: PoolSpec;
  parallelism: number;
  idleExitMs: number;
  name: string;
}

/** The Job that starts `parallelism` workers of a pool (the template is not modified). */
export function buildJob(template: V1Job, r: JobRequest): V1Job {
  const job = structuredClone(template);
  const poolLabels = {
    [labels.managedBy]: MANAGED_BY,
    [labels.component]: r.pool.service,
    [labels.pool]: r.pool.name,
    [labels.region]: r.pool.region,
  };
  job.metadata = { ...job.metadata, name: r.name, labels: { ...job.metadata?.labels, ...poolLabels } };
  delete job.metadata.generateName;
  delete job.metadata.namespace;
  const spec = job.spec!;
  spec.parallelism = r.parallelism;
  const podTemplate = spec.template;
  podTemplate.metadata = { ...podTemplate.metadata, labels: { ...podTemplate.metadata?.labels, ...poolLabels } };
  const pod = podTemplate.spec!;
  if (Object.keys(r.pool.nodeSelector).length > 0) pod.nodeSelector = { ...pod.nodeSelector, ...r.pool.nodeSelector };
  pod.containers = pod.containers.map((c): V1Container => {
    if (c.name !== WORKER_CONTAINER) return c;
    return {
      ...c,
      // The image's entrypoint runs the service named by its first argument.
      args: [r.pool.service],
      env: setEnv(c.env, [
        { name: 'PPC_REGION', value: r.pool.region },
        { name: 'PPC_IDLE_EXIT_MS', value: String(r.idleExitMs) },
        // The pod's name is its instance id, so a pod that heartbeats is known to be live, not starting.
        { name: 'PPC_INSTANCE_ID', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      ]),
    };
  });
  return job;
}
