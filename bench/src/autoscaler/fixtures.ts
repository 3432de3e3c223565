/**
 * A mesh of worker pools for the autoscaler benchmark, on a real nats-server: the pools' streams and
 * consumers with a backlog each, heartbeats of the workers the pools have, and task-time stats.
 */
import type { ConsumerInfo, JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { loadConfig } from '@ppc/lib/config';
import { type NatsConnection, provision, publish } from '@ppc/lib/nats';
import {
  consumers,
  kvBuckets,
  ReportTaskMsg,
  streams,
  type TaskStat,
  UrlCheckTaskMsg,
  type WorkerHeartbeat,
} from '@ppc/proto';
import { autoscalerEnv, loadPools, type PoolSpec } from '../../../services/autoscaler/src/config.ts';

export const REPORT_TYPES = ['search-terms', 'budget-pacing', 'anomalies', 'account-overview', 'keywords'];

/** `count` pools: report-worker and url-checker pools of count/2 regions. */
export function benchPools(count: number): PoolSpec[] {
  const regions = Array.from({ length: Math.ceil(count / 2) }, (_, i) => `r${i}`);
  return loadPools(
    loadConfig(autoscalerEnv, { PPC_AUTOSCALER_REGIONS: regions.join(','), PPC_AUTOSCALER_MAX_WORKERS: '20' }),
  ).slice(0, count);
}

/** A deterministic spread of numbers (no Math.random, so every run sees the same mesh). */
const spread = (i: number, mod: number) => (i * 7919 + 13) % mod;

function taskBody(pool: PoolSpec, n: number) {
  const base = {
    runId: `bench-${pool.region}-${n}`,
    jobId: 'job',
    orgId: 'org',
    accountId: 'acc',
    connectionId: 'conn',
    platform: 'demo' as const,
    region: pool.region,
    attempt: 1,
    trigger: 'schedule' as const,
    enqueuedAt: new Date().toISOString(),
    output: { kind: 'csv' as const },
  };
  return base;
}

export interface BenchMesh {
  pools: PoolSpec[];
  heartbeats: WorkerHeartbeat[];
  stats: TaskStat[];
  /** The pools' consumer infos as the server reported them. */
  infos: ConsumerInfo[];
}

/** Provisions the pools, queues a backlog for each, and writes heartbeats and stats into the buckets. */
export async function buildMesh(
  nc: NatsConnection,
  js: JetStreamClient,
  jsm: JetStreamManager,
  count: number,
): Promise<BenchMesh> {
  const pools = benchPools(count);
  await provision(nc, jsm, {
    streams: [streams.reportTasks, streams.urlCheckTasks, streams.clusterTasks, streams.events],
    consumers: [consumers.autoscaler, ...pools.map((p) => p.consumer)],
    kv: [kvBuckets.workers, kvBuckets.taskStats],
  });
  const now = Date.now();
  const heartbeats: WorkerHeartbeat[] = [];
  const stats: TaskStat[] = [];
  const publishes: Promise<unknown>[] = [];
  pools.forEach((pool, i) => {
    const backlog = spread(i, 60);
    for (let n = 0; n < backlog; n++) {
      publishes.push(
        pool.service === 'report-worker'
          ? publish(js, ReportTaskMsg, {
              ...taskBody(pool, n),
              reportType: REPORT_TYPES[n % REPORT_TYPES.length]!,
              params: {},
            })
          : publish(js, UrlCheckTaskMsg, { ...taskBody(pool, n), options: {} }),
      );
    }
    for (let w = 0; w < spread(i, 5); w++) {
      heartbeats.push({
        service: pool.service,
        instanceId: `${pool.name}-w${w}`,
        region: pool.region,
        version: '0.1.0',
        startedAt: new Date(now - 60_000).toISOString(),
        at: new Date(now).toISOString(),
        inFlight: 1,
        ready: true,
        pid: 1000 + w,
        host: 'bench',
      });
    }
    const types = pool.service === 'report-worker' ? REPORT_TYPES : ['urlcheck'];
    types.forEach((taskType, t) => {
      stats.push({
        pool: pool.name,
        taskType,
        meanMs: 2000 + spread(i + t, 50) * 1000,
        weight: 1 + spread(i * t + 1, 20),
        samples: 100,
        updatedAt: new Date(now - spread(i + t, 120) * 60_000).toISOString(),
      });
    });
  });
  await Promise.all(publishes);
  const kvm = new Kvm(nc);
  const workers = await kvm.open(kvBuckets.workers.bucket);
  const taskStats = await kvm.open(kvBuckets.taskStats.bucket);
  await Promise.all([
    ...heartbeats.map((h) => workers.put(`${h.service}.${h.instanceId}`, JSON.stringify(h))),
    ...stats.map((s) => taskStats.put(`${s.pool}.${s.taskType}`, JSON.stringify(s))),
  ]);
  const infos = await Promise.all(pools.map((p) => jsm.consumers.info(p.consumer.stream, p.consumer.durable)));
  return { pools, heartbeats, stats, infos };
}
