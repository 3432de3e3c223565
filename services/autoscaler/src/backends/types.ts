import type { BackendName, PoolSpec } from '../config.ts';

/** What a backend knows about one pool's workers. */
export interface PoolObservation {
  /** Workers it started that are not heartbeating yet (not in the live set). */
  starting: number;
  /** When it last started workers for the pool (epoch ms); the pool's cool-down runs from here. */
  lastStartAt: number | null;
}

/** Where workers come from: Kubernetes Jobs, processes on this machine, or nowhere. */
export interface ScalingBackend {
  readonly name: BackendName;
  /** Per pool name; `live` holds the instance ids heartbeating now, so a worker is never counted twice. */
  observe(pools: readonly PoolSpec[], live: ReadonlySet<string>): Promise<Map<string, PoolObservation>>;
  /** Starts `count` workers for the pool; resolves with how many it started. */
  start(pool: PoolSpec, count: number): Promise<number>;
  /** For the heartbeat's details. */
  details(): Record<string, unknown>;
  /** Shuts down what this process owns (the local backend's workers). */
  close(): Promise<void>;
}
