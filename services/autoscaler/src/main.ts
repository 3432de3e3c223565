/**
 * autoscaler: grows the worker pools (`report-worker-<region>`, `url-checker-<region>`) to their
 * backlog. Pools shrink by themselves: a worker it started stops after its idle period.
 *
 * Consumes: `tasks.cluster.>` (cluster.task.v1) through the durable consumer `autoscaler`; acts on
 * the `evaluate` schedule's ticks. Reads: the pools' consumer info, the `workers` and `task-stats`
 * buckets. Emits: `events.scale.<pool>` (scale.decision.v1). Starts workers as Kubernetes Jobs or
 * local processes (PPC_AUTOSCALER_BACKEND).
 */
import { Kvm } from '@nats-io/kv';
import { loadConfig } from '@ppc/lib/config';
import { ConfigError } from '@ppc/lib/errors';
import { consume } from '@ppc/lib/nats';
import { main, type ServiceDefinition } from '@ppc/lib/service';
import { ClusterTaskMsg, consumers, kvBuckets, streams } from '@ppc/proto';
import { Autoscaler } from './autoscaler.ts';
import { createBackend, loadJobTemplate, loadKubeConfig } from './backends/index.ts';
import { type AutoscalerConfig, autoscalerEnv, loadLocalCommand, loadPools } from './config.ts';
import { KvMirror, parseHeartbeat, parseStat } from './inputs.ts';

export { autoscalerEnv } from './config.ts';

/** Everything that can be wrong with the configuration, found before anything starts. */
export function checkConfig(config: AutoscalerConfig): void {
  loadPools(config);
  if (config.backend === 'local') loadLocalCommand(config);
  if (config.backend === 'kubernetes') {
    loadJobTemplate(config.kubeJobTemplate);
    loadKubeConfig(config.kubeconfig);
  }
}

export const autoscaler: ServiceDefinition<typeof autoscalerEnv> = {
  name: 'autoscaler',
  env: autoscalerEnv,
  resources: (config) => ({
    streams: [streams.clusterTasks, streams.reportTasks, streams.urlCheckTasks, streams.events],
    consumers: [consumers.autoscaler, ...loadPools(config).map((p) => p.consumer)],
    kv: [kvBuckets.taskStats],
  }),
  async start(ctx) {
    const { config, log } = ctx;
    checkConfig(config);
    const pools = loadPools(config);
    const backend = createBackend(config, log);
    ctx.onStop(() => backend.close());
    const kvm = new Kvm(ctx.nc);
    const heartbeats = await KvMirror.open(await kvm.open(kvBuckets.workers.bucket), parseHeartbeat, { log });
    const stats = await KvMirror.open(await kvm.open(kvBuckets.taskStats.bucket), parseStat, { log });
    ctx.onStop(() => {
      heartbeats.stop();
      stats.stop();
    });
    const scaler = new Autoscaler({
      js: ctx.js,
      jsm: ctx.jsm,
      pools,
      backend,
      heartbeats,
      stats,
      tickIntervalMs: config.tickIntervalMs,
      heartbeatFreshMs: kvBuckets.workers.ttlMs,
      log,
      metrics: ctx.metrics,
    });
    ctx.track(
      await consume(
        ctx.js,
        consumers.autoscaler,
        [ClusterTaskMsg],
        async (tick) => {
          await scaler.onTick(tick);
        },
        { concurrency: 1, log, metrics: ctx.metrics, serverVersion: ctx.nc.info?.version },
      ),
    );
    log.info(
      { backend: backend.name, pools: pools.map((p) => `${p.name} [${p.policy.min}..${p.policy.max}]`) },
      'autoscaler started',
    );
    return {
      details: () => ({
        backend: backend.name,
        pools: pools.map((p) => p.name),
        ...scaler.details(),
        ...backend.details(),
      }),
    };
  },
};

if (import.meta.main) {
  // A bad pool setting, template or kubeconfig stops start-up naming its variable, before NATS is dialled.
  try {
    checkConfig(loadConfig(autoscalerEnv, process.env));
  } catch (err) {
    const msg = err instanceof ConfigError ? `configuration error: ${err.message}` : (err as Error).message;
    process.stderr.write(`autoscaler: ${msg}\n`);
    process.exit(1);
  }
  main(autoscaler);
}
