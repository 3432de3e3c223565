/**
 * One evaluation: every pool's inputs put together and decided, without I/O, so the benchmark can
 * time exactly this and the service can run it between reading its inputs and acting.
 */
import type { ScaleDecision, TaskStat } from '@ppc/proto';
import { poolMeanTaskMs } from '@ppc/lib/scaling';
import type { PoolObservation } from './backends/types.ts';
import type { PoolSpec } from './config.ts';
import { type Decision, type DecisionInputs, decide } from './decide.ts';

export interface EvaluationInputs {
  pools: readonly PoolSpec[];
  /** Per pool name; a pool missing here (its consumer could not be read) is not decided. */
  backlogs: ReadonlyMap<string, number>;
  live: ReadonlyMap<string, number>;
  observations: ReadonlyMap<string, PoolObservation>;
  stats: Iterable<TaskStat>;
  now: number;
}

export interface PoolEvaluation {
  pool: PoolSpec;
  inputs: DecisionInputs;
  decision: Decision;
}

export function evaluate(i: EvaluationInputs): PoolEvaluation[] {
  const statsByPool = new Map<string, TaskStat[]>();
  for (const s of i.stats) {
    const list = statsByPool.get(s.pool);
    if (list) list.push(s);
    else statsByPool.set(s.pool, [s]);
  }
  const out: PoolEvaluation[] = [];
  for (const pool of i.pools) {
    const backlog = i.backlogs.get(pool.name);
    if (backlog === undefined) continue;
    const obs = i.observations.get(pool.name);
    const inputs: DecisionInputs = {
      backlog,
      live: i.live.get(pool.name) ?? 0,
      starting: obs?.starting ?? 0,
      meanTaskMs: poolMeanTaskMs(statsByPool.get(pool.name) ?? [], pool.name, i.now, pool.defaultTaskMs),
      lastStartAt: obs?.lastStartAt ?? null,
      now: i.now,
      policy: pool.policy,
    };
    out.push({ pool, inputs, decision: decide(inputs) });
  }
  return out;
}

/** The `scale.decision.v1` body: the decision with every input it was made from. */
export function scaleDecision(
  e: PoolEvaluation,
  started: number,
  backend: string,
  reason = e.decision.reason,
  at = new Date(e.inputs.now).toISOString(),
): ScaleDecision {
  return {
    pool: e.pool.name,
    at,
    backlog: e.inputs.backlog,
    live: e.inputs.live,
    starting: e.inputs.starting,
    meanTaskMs: Math.round(e.inputs.meanTaskMs * 1000) / 1000,
    targetDrainMs: e.inputs.policy.targetDrainMs,
    min: e.inputs.policy.min,
    max: e.inputs.policy.max,
    wanted: e.decision.wanted,
    started,
    backend,
    reason: reason.slice(0, 500),
  };
}
