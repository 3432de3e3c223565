/**
 * The tick handler: on each fresh `evaluate` tick, read every pool's inputs, decide, start what is
 * short through the backend, and publish each decision with its inputs to `events.scale.<pool>`.
 *
 * A tick older than two intervals is dropped (acknowledged, nothing done): the inputs it was meant to
 * look at are gone, and the next tick is due anyway. So is a tick from a deposed clock leader (lower
 * fencing token than one already seen). A failed evaluation is logged and not retried, for the same
 * reason. Decisions that say nothing new (no backlog, nothing started, same live/starting/wanted as
 * the pool's last published decision) are not published again, so an idle mesh writes no events.
 */
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from '@ppc/lib/log';
import { publish } from '@ppc/lib/nats';
import {
  type ClockTick,
  FencingGuard,
  type ScaleDecision,
  ScaleDecisionMsg,
  type TaskStat,
  type WorkerHeartbeat,
} from '@ppc/proto';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ScalingBackend } from './backends/types.ts';
import type { PoolSpec } from './config.ts';
import { evaluate, scaleDecision } from './evaluate.ts';
import { type KvMirror, liveWorkers, readBacklogs } from './inputs.ts';

/** The clock schedule whose ticks this autoscaler acts on (`tasks.cluster.evaluate`). */
export const EVALUATE_SCHEDULE = 'evaluate';

export type TickOutcome = 'evaluated' | 'stale' | 'fenced' | 'other-schedule' | 'failed';

export interface AutoscalerOptions {
  js: JetStreamClient;
  jsm: JetStreamManager;
  pools: readonly PoolSpec[];
  backend: ScalingBackend;
  heartbeats: KvMirror<WorkerHeartbeat>;
  stats: KvMirror<TaskStat>;
  tickIntervalMs: number;
  /** A heartbeat older than this no longer counts as a live worker (the `workers` bucket's TTL). */
  heartbeatFreshMs: number;
  log: Logger;
  metrics?: Registry;
  now?: () => number;
}

function metricsFor(registry: Registry | undefined) {
  const registers = registry ? [registry] : [];
  return {
    ticks: new Counter({
      name: 'autoscaler_ticks_total',
      help: 'Cluster ticks by outcome: evaluated, stale (older than two intervals), fenced (deposed leader), other-schedule, failed',
      labelNames: ['outcome'],
      registers,
    }),
    seconds: new Histogram({
      name: 'autoscaler_evaluation_seconds',
      help: 'Time to read inputs, decide and act for every pool',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers,
    }),
    backlog: new Gauge({
      name: 'autoscaler_pool_backlog',
      help: 'Pending plus unacknowledged tasks',
      labelNames: ['pool'],
      registers,
    }),
    workers: new Gauge({
      name: 'autoscaler_pool_workers',
      help: 'Workers per pool: live (heartbeating) or starting',
      labelNames: ['pool', 'state'],
      registers,
    }),
    wanted: new Gauge({
      name: 'autoscaler_pool_wanted',
      help: 'Workers the policy wants',
      labelNames: ['pool'],
      registers,
    }),
    meanTask: new Gauge({
      name: 'autoscaler_pool_mean_task_seconds',
      help: 'Recent mean task time the decision used',
      labelNames: ['pool'],
      registers,
    }),
    started: new Counter({
      name: 'autoscaler_workers_started_total',
      help: 'Workers started',
      labelNames: ['pool'],
      registers,
    }),
  };
}

interface Published {
  live: number;
  starting: number;
  wanted: number;
}

export class Autoscaler {
  readonly #o: AutoscalerOptions;
  readonly #now: () => number;
  readonly #fence = new FencingGuard();
  readonly #published = new Map<string, Published>();
  readonly #m: ReturnType<typeof metricsFor>;
  #last: { at: string; decisions: Record<string, { wanted: number; started: number }> } | undefined;

  constructor(o: AutoscalerOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#m = metricsFor(o.metrics);
  }

  async onTick(tick: ClockTick): Promise<TickOutcome> {
    const outcome = await this.#onTick(tick);
    this.#m.ticks.inc({ outcome });
    return outcome;
  }

  async #onTick(tick: ClockTick): Promise<TickOutcome> {
    const { log, tickIntervalMs } = this.#o;
    if (tick.schedule !== EVALUATE_SCHEDULE) return 'other-schedule';
    const age = this.#now() - Date.parse(tick.scheduledAt);
    if (age > 2 * tickIntervalMs) {
      log.info({ scheduledAt: tick.scheduledAt, ageMs: age, intervalMs: tickIntervalMs }, 'stale tick dropped');
      return 'stale';
    }
    if (!this.#fence.admit(tick.fencingToken)) {
      log.warn(
        { fencingToken: tick.fencingToken, highest: this.#fence.highest },
        'tick from a deposed clock leader dropped',
      );
      return 'fenced';
    }
    try {
      await this.evaluate();
      return 'evaluated';
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'evaluation failed; the next tick tries again');
      return 'failed';
    }
  }

  /** Reads, decides, starts and publishes for every pool; returns the decisions. */
  async evaluate(): Promise<ScaleDecision[]> {
    const o = this.#o;
    const timer = this.#m.seconds.startTimer();
    const now = this.#now();
    const live = liveWorkers(o.heartbeats.values(), now, o.heartbeatFreshMs);
    const [backlogs, observations] = await Promise.all([
      readBacklogs(o.jsm, o.pools, o.log),
      o.backend.observe(o.pools, live.ids),
    ]);
    const evaluations = evaluate({
      pools: o.pools,
      backlogs,
      live: live.byPool,
      observations,
      stats: o.stats.values(),
      now,
    });
    const at = new Date(now).toISOString();
    const decisions = await Promise.all(
      evaluations.map(async (e) => {
        let started = 0;
        let reason = e.decision.reason;
        if (e.decision.toStart > 0) {
          if (o.backend.name === 'none') reason += ' (backend none: nothing started)';
          else {
            try {
              started = await o.backend.start(e.pool, e.decision.toStart);
            } catch (err) {
              reason += `; starting failed: ${(err as Error).message}`;
              o.log.warn({ pool: e.pool.name, err: (err as Error).message }, 'cannot start workers');
            }
          }
        }
        const body = scaleDecision(e, started, o.backend.name, reason, at);
        this.#record(body);
        if (this.#worthPublishing(body)) {
          await publish(o.js, ScaleDecisionMsg, body, { timeoutMs: 2000, retries: 0 });
          this.#published.set(body.pool, { live: body.live, starting: body.starting, wanted: body.wanted });
        }
        if (started > 0) o.log.info({ ...body }, 'scaled');
        return body;
      }),
    );
    this.#last = {
      at: new Date(now).toISOString(),
      decisions: Object.fromEntries(decisions.map((d) => [d.pool, { wanted: d.wanted, started: d.started }])),
    };
    timer();
    return decisions;
  }

  #worthPublishing(d: ScaleDecision): boolean {
    if (d.backlog > 0 || d.started > 0 || d.wanted > d.live + d.starting) return true;
    const last = this.#published.get(d.pool);
    return !last || last.live !== d.live || last.starting !== d.starting || last.wanted !== d.wanted;
  }

  #record(d: ScaleDecision): void {
    const pool = d.pool;
    this.#m.backlog.set({ pool }, d.backlog);
    this.#m.workers.set({ pool, state: 'live' }, d.live);
    this.#m.workers.set({ pool, state: 'starting' }, d.starting);
    this.#m.wanted.set({ pool }, d.wanted);
    this.#m.meanTask.set({ pool }, d.meanTaskMs / 1000);
    if (d.started > 0) this.#m.started.inc({ pool }, d.started);
  }

  details(): Record<string, unknown> {
    return { lastEvaluation: this.#last ?? null, fencingToken: this.#fence.highest };
  }
}
