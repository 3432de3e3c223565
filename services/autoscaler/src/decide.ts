/**
 * The scaling policy, pure: from what a pool has to do and what it has, how many workers to start.
 *
 *   wanted = clamp(ceil(backlog × meanTaskMs / targetDrainMs), min, max)
 *
 * with a backlog of any size wanting at least one worker. Only the difference to the workers the pool
 * has (live plus starting) is started, and nothing is ever stopped: a worker that runs out of work
 * exits after its idle period, which is the only way a pool shrinks. After starting workers a pool
 * cools down: no more starts for it until `cooldownMs` has passed, so workers that crash at start-up
 * or take long to appear are not replaced tick after tick.
 */

export interface PoolPolicy {
  min: number;
  max: number;
  targetDrainMs: number;
  cooldownMs: number;
}

export interface DecisionInputs {
  /** Messages waiting for the pool's consumer plus those delivered and not yet acknowledged. */
  backlog: number;
  /** Workers heartbeating in the `workers` bucket. */
  live: number;
  /** Workers the backend started that have not heartbeated yet. */
  starting: number;
  /** Recent mean task time of the pool (or the assumed one). */
  meanTaskMs: number;
  /** When the backend last started workers for this pool (epoch ms), if it knows. */
  lastStartAt: number | null;
  now: number;
  policy: PoolPolicy;
}

export interface Decision {
  wanted: number;
  /** How many workers to start now. */
  toStart: number;
  coolingDown: boolean;
  reason: string;
}

const seconds = (ms: number) => `${Math.round(ms / 100) / 10} s`;

export function decide(i: DecisionInputs): Decision {
  const { min, max, targetDrainMs, cooldownMs } = i.policy;
  // A hair of slack so float noise in the mean (2000.0000000000002 ms) does not round up a whole worker.
  const needed = i.backlog > 0 ? Math.max(1, Math.ceil((i.backlog * i.meanTaskMs) / targetDrainMs - 1e-9)) : 0;
  const wanted = Math.min(max, Math.max(min, needed));
  const have = i.live + i.starting;
  const deficit = wanted - have;

  let why =
    i.backlog > 0
      ? `backlog ${i.backlog} × ${Math.round(i.meanTaskMs)} ms / ${seconds(targetDrainMs)} drain needs ${needed}`
      : 'no backlog';
  if (needed !== wanted) why += `, ${needed > wanted ? 'capped at max' : 'raised to min'} ${wanted}`;
  else why += ` (min ${min}, max ${max})`;
  const has = `has ${have} (${i.live} live, ${i.starting} starting)`;

  if (deficit <= 0) return { wanted, toStart: 0, coolingDown: false, reason: `${why}; ${has}: nothing to start` };
  const sinceStart = i.lastStartAt === null ? Number.POSITIVE_INFINITY : i.now - i.lastStartAt;
  if (sinceStart < cooldownMs) {
    return {
      wanted,
      toStart: 0,
      coolingDown: true,
      reason: `${why}; ${has}: ${deficit} short, but cooling down (last start ${seconds(sinceStart)} ago, cool-down ${seconds(cooldownMs)})`,
    };
  }
  return { wanted, toStart: deficit, coolingDown: false, reason: `${why}; ${has}: start ${deficit}` };
}
