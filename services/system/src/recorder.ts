import type { Database as MikroORM } from '@ppc/lib/db';
import type { ServiceContext } from '@ppc/lib/service';
import { type Consumption, consume } from '@ppc/lib/nats';
import {
  type BodyOf,
  consumers,
  RunCancelledMsg,
  RunFailedMsg,
  RunProgressMsg,
  RunQueuedMsg,
  RunStartedMsg,
  RunSucceededMsg,
  runEventMessages,
} from '@ppc/proto';

/**
 * The run recorder projects run events (`events.run.<runId>.<kind>`) into the `runs` row.
 *
 * Events arrive redelivered, late and, with several recorder replicas or a concurrency above one,
 * in any order. The projection is therefore a merge that does not depend on arrival order: the row
 * ends up the same whatever order a set of events is applied in, and applying an event twice is a
 * no-op. Per run:
 *
 * - Only the newest attempt counts. An event of an older attempt is ignored; the first event of a
 *   newer attempt resets every per-attempt field (status, progress, phase, worker, timings, outputs,
 *   row counts, error, started/finished times) and then applies.
 * - Status order within an attempt: queued < running (started, progress) < terminal (succeeded,
 *   failed, cancelled). Terminal is final for the attempt: once a terminal event is projected, no
 *   started or progress event changes the status. Of two terminal events of one attempt (a task
 *   redelivered after its first outcome was published) the earlier one in the stream wins, which is
 *   what projecting them in stream order gives.
 * - `last_event_seq` is the stream sequence of the attempt's winning terminal event once it has one,
 *   else the highest sequence projected for the attempt.
 * - Progress only increases: the progress event with the highest (percent, phase order fetching <
 *   processing < writing) sets `progress` and `phase`. Terminal events leave them as last reported
 *   (a failed run shows how far it got; a succeeded run is complete whatever its progress says).
 * - `started_at` and `worker_instance` come from the attempt's latest `started` event (by its `at`,
 *   then worker name): a task redelivered to a second worker shows the worker that took it last.
 *
 * Everything happens in one UPDATE that locks the row (a `FOR UPDATE` subquery reads the current
 * row), so two recorders projecting events of the same run serialise on it and never interleave.
 * The UPDATE only matches when the event changes something, so duplicates write nothing.
 *
 * When a run's outcome changes (a terminal event, or a newer attempt replacing a finished one) the
 * job's statistics are recomputed from its runs in a transaction that locks the job row first:
 * last success, mean duration of the last RECENT_SUCCESSES successful runs, and failures since the
 * last success.
 */

/** Successful runs the job's mean duration is computed over. */
export const RECENT_SUCCESSES = 10;

type RunEventDef = (typeof runEventMessages)[number];
export type RunEventBody = BodyOf<RunEventDef>;

export interface ProjectOptions {
  /** The event's stream sequence in `EVENTS` (`HandlerContext.streamSeq`). */
  streamSeq: number;
}

export interface ProjectResult {
  /** `applied`: the row changed; `ignored`: duplicate, stale or dominated; `unknown-run`: no such run. */
  outcome: 'applied' | 'ignored' | 'unknown-run';
  /** The run's status and attempt after the event (absent for an unknown run). */
  status?: string;
  attempt?: number;
  /** True when the job's statistics were recomputed. */
  statsUpdated: boolean;
}

const TERMINAL = ['succeeded', 'failed', 'cancelled'] as const;
const PHASES = ['fetching', 'processing', 'writing'] as const;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The event as one row of parameters for the projection statement. */
interface EventRow {
  attempt: number;
  seq: number;
  /** 0 queued, 1 started, 2 progress, 3 terminal. */
  rank: 0 | 1 | 2 | 3;
  /** The status a terminal event sets. */
  kind: string | null;
  at: string;
  worker: string | null;
  pct: number | null;
  phase: string | null;
  phaseRank: number;
  outputs: string | null;
  rows: string | null;
  timings: string | null;
  errorCode: string | null;
  errorMessage: string | null;
}

const types = {
  queued: RunQueuedMsg.type,
  started: RunStartedMsg.type,
  progress: RunProgressMsg.type,
  succeeded: RunSucceededMsg.type,
  failed: RunFailedMsg.type,
  cancelled: RunCancelledMsg.type,
};

function eventRow(type: string, body: RunEventBody, seq: number): EventRow {
  const row: EventRow = {
    attempt: body.attempt,
    seq,
    rank: 0,
    kind: null,
    at: body.at,
    worker: null,
    pct: null,
    phase: null,
    phaseRank: 0,
    outputs: null,
    rows: null,
    timings: null,
    errorCode: null,
    errorMessage: null,
  };
  switch (type) {
    case types.queued:
      return row;
    case types.started: {
      const b = body as BodyOf<typeof RunStartedMsg>;
      return { ...row, rank: 1, worker: b.worker };
    }
    case types.progress: {
      const b = body as BodyOf<typeof RunProgressMsg>;
      return { ...row, rank: 2, pct: b.percent, phase: b.phase, phaseRank: PHASES.indexOf(b.phase) + 1 };
    }
    case types.succeeded: {
      const b = body as BodyOf<typeof RunSucceededMsg>;
      return {
        ...row,
        rank: 3,
        kind: 'succeeded',
        outputs: JSON.stringify(b.outputs),
        rows: JSON.stringify(b.rows),
        timings: JSON.stringify(b.timings),
      };
    }
    case types.failed: {
      const b = body as BodyOf<typeof RunFailedMsg>;
      return { ...row, rank: 3, kind: 'failed', errorCode: b.code, errorMessage: b.message };
    }
    case types.cancelled: {
      const b = body as BodyOf<typeof RunCancelledMsg>;
      return { ...row, rank: 3, kind: 'cancelled', errorCode: 'cancelled', errorMessage: b.reason };
    }
    default:
      throw new TypeError(`not a run event type: ${type}`);
  }
}

// Conditions over the current row `y` and the event `e` (see the rules above).
const NEWER = 'e.attempt > y.attempt';
const SAME = 'e.attempt = y.attempt';
const FINISHED = `y.status in (${TERMINAL.map((s) => `'${s}'`).join(', ')})`;
const PHASE_RANK = `coalesce(array_position(array[${PHASES.map((p) => `'${p}'`).join(', ')}]::text[], y.phase::text), 0)`;
const TERMINAL_WINS = `e.rank = 3 and (${NEWER} or (${SAME} and (not ${FINISHED} or e.seq < y.last_event_seq)))`;
const STARTED_WINS = `e.rank = 1 and (${NEWER} or (${SAME} and (y.started_at is null or e.at > y.started_at
  or (e.at = y.started_at and e.worker > coalesce(y.worker_instance, '')))))`;
const PROGRESS_WINS = `e.rank = 2 and (${NEWER} or (${SAME} and (e.pct > y.progress
  or (e.pct = y.progress and e.phase_rank > ${PHASE_RANK}))))`;
const BECOMES_RUNNING = `e.rank in (1, 2) and (${NEWER} or (${SAME} and y.status = 'queued'))`;
const SEQ_ADVANCES = `e.rank < 3 and (${NEWER} or (${SAME} and not ${FINISHED} and e.seq > y.last_event_seq))`;

/** `field = the event's value when its condition holds, the default on a newer attempt, else unchanged`. */
const field = (column: string, when: string, value: string, reset = 'null') =>
  `${column} = case when c.${when} then ${value} when c.newer then ${reset} else y.${column} end`;

const PROJECT_SQL = `
update runs x set
  attempt = e.attempt,
  status = case when c.terminal_wins then e.kind when c.becomes_running then 'running'
    when c.newer then 'queued' else y.status end,
  last_event_seq = case when c.terminal_wins or c.seq_advances then e.seq else y.last_event_seq end,
  ${field('started_at', 'started_wins', 'e.at')},
  ${field('worker_instance', 'started_wins', 'e.worker')},
  ${field('progress', 'progress_wins', 'e.pct', '0')},
  ${field('phase', 'progress_wins', 'e.phase')},
  ${field('finished_at', 'terminal_wins', 'e.at')},
  ${field('output_links', 'terminal_wins', 'e.outputs')},
  ${field('row_counts', 'terminal_wins', 'e.rows')},
  ${field('timings', 'terminal_wins', 'e.timings')},
  ${field('error_code', 'terminal_wins', 'e.error_code')},
  ${field('error_message', 'terminal_wins', 'e.error_message')}
from (select * from runs where id = ?::uuid for update) y
cross join (select ?::int as attempt, ?::bigint as seq, ?::int as rank, ?::text as kind, ?::timestamptz as at,
  ?::text as worker, ?::float8 as pct, ?::text as phase, ?::int as phase_rank, ?::jsonb as outputs,
  ?::jsonb as rows, ?::jsonb as timings, ?::text as error_code, ?::text as error_message) e
cross join lateral (select ${NEWER} as newer, ${TERMINAL_WINS} as terminal_wins, ${STARTED_WINS} as started_wins,
  ${PROGRESS_WINS} as progress_wins, ${BECOMES_RUNNING} as becomes_running, ${SEQ_ADVANCES} as seq_advances) c
where x.id = y.id and e.attempt >= y.attempt
  and (c.terminal_wins or c.started_wins or c.progress_wins or c.becomes_running or c.seq_advances)
returning x.job_id, x.status, x.attempt, y.status as old_status, y.attempt as old_attempt`;

const JOB_STATS_SQL = `
update jobs j set
  last_success_at = (select max(r.finished_at) from runs r where r.job_id = j.id and r.status = 'succeeded'),
  mean_duration_ms = (select round(avg(d.ms)) from (
      select coalesce(extract(epoch from r.finished_at - r.started_at) * 1000, (r.timings->>'total')::float8) as ms
      from runs r where r.job_id = j.id and r.status = 'succeeded'
      order by r.finished_at desc limit ${RECENT_SUCCESSES}) d),
  consecutive_failures = (select count(*) from runs r where r.job_id = j.id and r.status = 'failed'
    and r.finished_at > coalesce(
      (select max(s.finished_at) from runs s where s.job_id = j.id and s.status = 'succeeded'), '-infinity'))
where j.id = ?::uuid`;

const isTerminal = (status: string) => (TERMINAL as readonly string[]).includes(status);

/** Recomputes a job's statistics from its runs. Locks the job row first, so concurrent recomputations see each other's runs. */
export async function recomputeJobStats(orm: MikroORM, jobId: string): Promise<void> {
  await orm.em.fork().transactional(async (em) => {
    await em.execute('select id from jobs where id = ?::uuid for update', [jobId]);
    await em.execute(JOB_STATS_SQL, [jobId], 'run');
  });
}

/** Projects one run event into its run row (see the module comment); safe to call again with the same event. */
export async function projectRunEvent(
  orm: MikroORM,
  type: string,
  body: RunEventBody,
  opts: ProjectOptions,
): Promise<ProjectResult> {
  if (!UUID.test(body.runId)) return { outcome: 'unknown-run', statsUpdated: false };
  const e = eventRow(type, body, opts.streamSeq);
  const em = orm.em.fork();
  const rows = await em.execute<
    { job_id: string; status: string; attempt: number; old_status: string; old_attempt: number }[]
  >(PROJECT_SQL, [
    body.runId,
    e.attempt,
    e.seq,
    e.rank,
    e.kind,
    e.at,
    e.worker,
    e.pct,
    e.phase,
    e.phaseRank,
    e.outputs,
    e.rows,
    e.timings,
    e.errorCode,
    e.errorMessage,
  ]);
  const row = rows[0];
  if (!row) {
    const current = await em.execute<{ status: string; attempt: number }[]>(
      'select status, attempt from runs where id = ?::uuid',
      [body.runId],
    );
    const run = current[0];
    if (!run) return { outcome: 'unknown-run', statsUpdated: false };
    return { outcome: 'ignored', status: run.status, attempt: run.attempt, statsUpdated: false };
  }
  // What the statistics read changed: a terminal event won, a newer attempt replaced a finished one, or
  // a finished run learnt when it started (its `started` event came after its outcome).
  const outcomeChanged = e.rank === 3 || isTerminal(row.old_status);
  if (outcomeChanged) await recomputeJobStats(orm, row.job_id);
  return { outcome: 'applied', status: row.status, attempt: row.attempt, statsUpdated: outcomeChanged };
}

export interface RecorderOptions {
  /** Events projected at once; default 16. */
  concurrency?: number;
}

/** The parts of the service context the recorder uses (`ServiceContext` fits). */
export type RecorderContext = Pick<ServiceContext<unknown>, 'js' | 'log'> &
  Partial<Pick<ServiceContext<unknown>, 'metrics' | 'track'>>;

/**
 * Consumes `consumers.systemRecorder` (all run events) and projects each into the runs table. A failed
 * projection (database down) is retried with the consumer's backoff; the returned consumption is tracked
 * by the service when `ctx.track` is there, so shutdown hands in-flight events back.
 */
export async function startRecorder(
  ctx: RecorderContext,
  orm: MikroORM,
  opts: RecorderOptions = {},
): Promise<Consumption> {
  const log = ctx.log.child({ component: 'recorder' });
  const consumption = await consume(
    ctx.js,
    consumers.systemRecorder,
    runEventMessages,
    async (body, m) => {
      const res = await projectRunEvent(orm, m.type, body, { streamSeq: m.streamSeq });
      if (res.outcome === 'unknown-run')
        log.warn({ runId: body.runId, type: m.type, seq: m.streamSeq }, 'event for an unknown run, skipped');
    },
    {
      concurrency: opts.concurrency ?? 16,
      log: ctx.log,
      metrics: ctx.metrics,
      // No watchMaxDeliveries: it deletes the given-up message from its stream, and EVENTS is shared
      // (the notifier and gateway replays read the same events).
    },
  );
  return ctx.track ? ctx.track(consumption) : consumption;
}
