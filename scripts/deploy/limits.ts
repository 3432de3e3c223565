/**
 * Memory limits of every container, in MiB: one table for docker-compose.yml and k8s/, checked by
 * manifests.test.ts. They follow the design's peak-memory targets with headroom for Node's baseline
 * (~60 MiB) and a burst: report-worker ≤ 400 MB peak on the largest report (issue 6), url-checker
 * ≤ 200 MB (issue 7), the others small and steady. NATS holds JetStream indexes and caches.
 */
export const memoryLimitMiB = {
  gateway: 512,
  system: 384,
  'report-worker': 512,
  'url-checker': 256,
  autoscaler: 256,
  clock: 192,
  nats: 1024,
  postgres: 1024,
  /** The one-shot migration step (init container of gateway and system, `migrate` in compose). */
  migrate: 256,
} as const;

export type Container = keyof typeof memoryLimitMiB;
