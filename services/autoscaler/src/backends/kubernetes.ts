/**
 * The Kubernetes backend: workers are pods of BatchV1 Jobs made from the template, one Job per start
 * with `parallelism` = the number of workers to start. Each tick it lists the Jobs and pods it made
 * (by label): a pod of an unfinished Job that is Pending, or Running without a heartbeat yet, is
 * starting; the newest Job of a pool is its last start. Needs `create` and `list` on Jobs and `list`
 * on Pods in its namespace, nothing more (k8s/base/autoscaler/rbac.yaml).
 */
import { randomBytes } from 'node:crypto';
import { BatchV1Api, CoreV1Api, KubeConfig, type V1Job } from '@kubernetes/client-node';
import { ConfigError } from '@ppc/lib/errors';
import type { Logger } from '@ppc/lib/log';
import type { PoolSpec } from '../config.ts';
import { buildJob, jobName, labels, MANAGED_SELECTOR } from './job.ts';
import type { PoolObservation, ScalingBackend } from './types.ts';

/** From the file named by PPC_AUTOSCALER_KUBECONFIG, else KUBECONFIG, ~/.kube/config or the pod's service account. */
export function loadKubeConfig(path: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (path) kc.loadFromFile(path);
    else kc.loadFromDefault();
  } catch (err) {
    throw new ConfigError('PPC_AUTOSCALER_KUBECONFIG', path, `a readable kubeconfig (${(err as Error).message})`);
  }
  if (!kc.getCurrentCluster()) {
    throw new ConfigError(
      'PPC_AUTOSCALER_KUBECONFIG',
      path,
      'a kubeconfig with a current cluster, or to run in a pod with a service account',
    );
  }
  return kc;
}

export interface KubernetesBackendOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  template: V1Job;
  /** The workers' PPC_IDLE_EXIT_MS. */
  idleExitMs: number;
  log: Logger;
}

const FINISHED = new Set(['Complete', 'Failed', 'SuccessCriteriaMet', 'FailureTarget']);
const finished = (job: V1Job) =>
  (job.status?.conditions ?? []).some((c) => FINISHED.has(c.type) && c.status === 'True');
const jobNameOf = (l: Record<string, string> | undefined) => l?.['batch.kubernetes.io/job-name'] ?? l?.['job-name'];

export class KubernetesBackend implements ScalingBackend {
  readonly name = 'kubernetes' as const;
  readonly #o: KubernetesBackendOptions;
  readonly #batch: BatchV1Api;
  readonly #core: CoreV1Api;
  #created = 0;
  #lastSeen: Record<string, { jobs: number; starting: number }> = {};

  constructor(o: KubernetesBackendOptions) {
    this.#o = o;
    this.#batch = o.kubeConfig.makeApiClient(BatchV1Api);
    this.#core = o.kubeConfig.makeApiClient(CoreV1Api);
  }

  async observe(pools: readonly PoolSpec[], live: ReadonlySet<string>): Promise<Map<string, PoolObservation>> {
    const { namespace } = this.#o;
    const [jobs, pods] = await Promise.all([
      this.#batch.listNamespacedJob({ namespace, labelSelector: MANAGED_SELECTOR }),
      this.#core.listNamespacedPod({ namespace, labelSelector: MANAGED_SELECTOR }),
    ]);
    const out = new Map<string, PoolObservation>(pools.map((p) => [p.name, { starting: 0, lastStartAt: null }]));
    const active = new Set<string>();
    const seen: Record<string, { jobs: number; starting: number }> = {};
    for (const job of jobs.items) {
      const pool = job.metadata?.labels?.[labels.pool];
      const o = pool ? out.get(pool) : undefined;
      if (!pool || !o) continue;
      const created = job.metadata?.creationTimestamp ? new Date(job.metadata.creationTimestamp).getTime() : null;
      if (created !== null && (o.lastStartAt === null || created > o.lastStartAt)) o.lastStartAt = created;
      if (finished(job)) continue;
      active.add(job.metadata?.name ?? '');
      seen[pool] = { jobs: (seen[pool]?.jobs ?? 0) + 1, starting: 0 };
    }
    for (const pod of pods.items) {
      const pool = pod.metadata?.labels?.[labels.pool];
      const o = pool ? out.get(pool) : undefined;
      if (!pool || !o || pod.metadata?.deletionTimestamp) continue;
      if (!active.has(jobNameOf(pod.metadata?.labels) ?? '')) continue;
      const phase = pod.status?.phase;
      const heartbeating = live.has(pod.metadata?.name ?? '');
      if (phase === 'Pending' || (phase === 'Running' && !heartbeating)) {
        o.starting += 1;
        if (seen[pool]) seen[pool].starting += 1;
      }
    }
    this.#lastSeen = seen;
    return out;
  }

  async start(pool: PoolSpec, count: number): Promise<number> {
    const name = jobName(pool.name, Date.now(), randomBytes(2).toString('hex').slice(0, 3));
    const body = buildJob(this.#o.template, { pool, parallelism: count, idleExitMs: this.#o.idleExitMs, name });
    await this.#batch.createNamespacedJob({ namespace: this.#o.namespace, body });
    this.#created += 1;
    this.#o.log.info({ pool: pool.name, job: name, parallelism: count }, 'worker Job created');
    return count;
  }

  details(): Record<string, unknown> {
    return { namespace: this.#o.namespace, jobsCreated: this.#created, activeJobs: this.#lastSeen };
  }

  async close(): Promise<void> {}
}
