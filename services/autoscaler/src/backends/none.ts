import type { PoolSpec } from '../config.ts';
import type { PoolObservation, ScalingBackend } from './types.ts';

/** Decides and publishes, starts nothing: for watching the policy before trusting it. */
export class NoneBackend implements ScalingBackend {
  readonly name = 'none' as const;
  async observe(pools: readonly PoolSpec[]): Promise<Map<string, PoolObservation>> {
    return new Map(pools.map((p) => [p.name, { starting: 0, lastStartAt: null }]));
  }
  async start(): Promise<number> {
    return 0;
  }
  details(): Record<string, unknown> {
    return {};
  }
  async close(): Promise<void> {}
}
