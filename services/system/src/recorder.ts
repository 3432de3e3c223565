import type { Database as MikroORM } from '@ppc/lib/db';
import { DeadlockException } from '@mikro-orm/postgresql';
import type pg from 'pg';
import type { ServiceContext } from '@ppc/lib/service';
import { rawPool } from './raw-pool.ts';
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
 *   then worker name in byte order): a task redelivered to a second worker shows the worker that took it last.
 *
 * The recorder writes events in batches (group commit): a batch's events are folded per run into the greatest
 * candidate of each rule (see `RunDelta`), and one statement locks the batch's runs in id order (so two
 * recorders projecting events of the same run serialise on it and never deadlock), updates those the batch
 * changes (duplicates and stale events write nothing) and commits: one round trip and one WAL flush per batch.
 *
 * When a batch changes what the statistics read (status, start, finish or timings of a run that is finished
 * before or after: a terminal event, or a newer attempt replacing a finished one) the job's statistics are
 * recomputed from its runs in a transaction that locks the job row first:
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
  /** Set when this event finished the run (succeeded or failed, with a known start): its wall time. */
  finished?: FinishedRun;
}

const TERMINAL = ['succeeded', 'failed', 'cancelled'] as const;
const PHASES = ['fetching', 'processing', 'writing'] as const;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * One run's events of a batch, folded into the candidates that can change its row: only its newest attempt
 * counts (a newer attempt resets everything an older one set, so older events of the batch end up ignored
 * whatever order they are applied in), and within it each field keeps only its greatest candidate (the rules
 * above only ever keep the greater value). Applying the fold is the same as applying its events one by one.
 */
interface RunDelta {
  run_id: string;
  attempt: number;
  /** Highest stream sequence of a queued, started or progress event; null when there is none. */
  n_seq: number | null;
  /** A started or progress event is among them. */
  running: boolean;
  /** The latest `started` (by `at`, then worker). */
  s_at: string | null;
  s_worker: string | null;
  /** The highest progress (by percent, then phase). */
  p_pct: number | null;
  p_phase: string | null;
  p_rank: number | null;
  /** The earliest terminal event in the stream (lowest sequence). */
  t_seq: number | null;
  t_kind: string | null;
  t_at: string | null;
  outputs: unknown;
  rows: unknown;
  timings: unknown;
  error_code: string | null;
  error_message: string | null;
}

/** A run's fold and which of its events stand for each candidate (the ones reported as applied). */
interface Folded {
  delta: RunDelta;
  events: number[];
  terminal?: number;
  started?: number;
  progress?: number;
  nonTerminal?: number;
}

const types = {
  queued: RunQueuedMsg.type,
  started: RunStartedMsg.type,
  progress: RunProgressMsg.type,
  succeeded: RunSucceededMsg.type,
  failed: RunFailedMsg.type,
  cancelled: RunCancelledMsg.type,
};

/**
 * An event time in microseconds, as PostgreSQL stores it (`Date.parse` keeps milliseconds; the schema allows
 * up to 9 fractional digits, which PostgreSQL rounds to 6).
 */
export function atMicros(at: string): number {
  const ms = Date.parse(at);
  if (Number.isNaN(ms)) throw new TypeError(`not a timestamp: ${at}`);
  const fraction = /\.(\d+)/.exec(at)?.[1] ?? '';
  return ms * 1000 + (fraction.length > 3 ? Math.round(Number(`0.${fraction.slice(3)}`) * 1000) : 0);
}

/** Worker names compare as the statement compares them (`collate "C"`: UTF-8 bytes). */
const compareBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

function foldRun(entries: readonly RunEventEntry[], runId: string, events: number[]): Folded {
  let attempt = 0;
  for (const i of events) attempt = Math.max(attempt, entries[i]!.body.attempt);
  const delta: RunDelta = {
    run_id: runId,
    attempt,
    n_seq: null,
    running: false,
    s_at: null,
    s_worker: null,
    p_pct: null,
    p_phase: null,
    p_rank: null,
    t_seq: null,
    t_kind: null,
    t_at: null,
    outputs: null,
    rows: null,
    timings: null,
    error_code: null,
    error_message: null,
  };
  const folded: Folded = { delta, events };
  let startedAt = 0;
  for (const i of events) {
    const { type, body, streamSeq: seq } = entries[i]!;
    if (body.attempt !== attempt) continue;
    const terminal = type === types.succeeded || type === types.failed || type === types.cancelled;
    if (!terminal) {
      if (delta.n_seq === null || seq > delta.n_seq) {
        delta.n_seq = seq;
        folded.nonTerminal = i;
      }
    }
    switch (type) {
      case types.queued:
        break;
      case types.started: {
        const b = body as BodyOf<typeof RunStartedMsg>;
        const micros = atMicros(b.at);
        delta.running = true;
        if (
          delta.s_at === null ||
          micros > startedAt ||
          (micros === startedAt && compareBytes(b.worker, delta.s_worker!) > 0)
        ) {
          startedAt = micros;
          delta.s_at = b.at;
          delta.s_worker = b.worker;
          folded.started = i;
        }
        break;
      }
      case types.progress: {
        const b = body as BodyOf<typeof RunProgressMsg>;
        const rank = PHASES.indexOf(b.phase) + 1;
        delta.running = true;
        if (delta.p_pct === null || b.percent > delta.p_pct || (b.percent === delta.p_pct && rank > delta.p_rank!)) {
          delta.p_pct = b.percent;
          delta.p_phase = b.phase;
          delta.p_rank = rank;
          folded.progress = i;
        }
        break;
      }
      case types.succeeded:
      case types.failed:
      case types.cancelled: {
        if (delta.t_seq !== null && seq >= delta.t_seq) break;
        folded.terminal = i;
        delta.t_seq = seq;
        delta.t_at = body.at;
        delta.outputs = null;
        delta.rows = null;
        delta.timings = null;
        if (type === types.succeeded) {
          const b = body as BodyOf<typeof RunSucceededMsg>;
          delta.t_kind = 'succeeded';
          delta.outputs = b.outputs;
          delta.rows = b.rows;
          delta.timings = b.timings;
          delta.error_code = null;
          delta.error_message = null;
        } else if (type === types.failed) {
          const b = body as BodyOf<typeof RunFailedMsg>;
          delta.t_kind = 'failed';
          delta.error_code = b.code;
          delta.error_message = b.message;
        } else {
          const b = body as BodyOf<typeof RunCancelledMsg>;
          delta.t_kind = 'cancelled';
          delta.error_code = 'cancelled';
          delta.error_message = b.reason;
        }
        break;
      }
      default:
        throw new TypeError(`not a run event type: ${type}`);
    }
  }
  return folded;
}

// Conditions over the current row `y` and a run's folded events `e` (see the rules above).
const NEWER = 'e.attempt > y.attempt';
const SAME = 'e.attempt = y.attempt';
const TERMINAL_LIST = TERMINAL.map((s) => `'${s}'`).join(', ');
const FINISHED = `y.status in (${TERMINAL_LIST})`;
const PHASE_RANK = `coalesce(array_position(array[${PHASES.map((p) => `'${p}'`).join(', ')}]::text[], y.phase::text), 0)`;
const TERMINAL_WINS = `e.t_seq is not null and (${NEWER} or (${SAME} and (not ${FINISHED} or e.t_seq < y.last_event_seq)))`;
const STARTED_WINS = `e.s_at is not null and (${NEWER} or (${SAME} and (y.started_at is null or e.s_at > y.started_at
  or (e.s_at = y.started_at and e.s_worker collate "C" > coalesce(y.worker_instance, '') collate "C"))))`;
const PROGRESS_WINS = `e.p_pct is not null and (${NEWER} or (${SAME} and (e.p_pct > y.progress
  or (e.p_pct = y.progress and e.p_rank > ${PHASE_RANK}))))`;
const BECOMES_RUNNING = `e.running and (${NEWER} or (${SAME} and y.status = 'queued'))`;
const SEQ_ADVANCES = `e.n_seq is not null and (${NEWER} or (${SAME} and not ${FINISHED} and e.n_seq > y.last_event_seq))`;

/** `field = the fold's value when its condition holds, the default on a newer attempt, else unchanged`. */
const field = (column: string, when: string, value: string, reset = 'null') =>
  `${column} = case when c.${when} then ${value} when c.newer then ${reset} else y.${column} end`;

/**
 * Projects a batch (one row per run, `$1`: a JSON array of `RunDelta`) in one statement: locks the runs in id
 * order (concurrent batches never deadlock), updates those the batch changes, and returns every run it found
 * with its state before and after, which conditions won, and whether the job's statistics read anything that
 * changed (status, start, finish, timings of a run finished before or after).
 */
export const PROJECT_SQL = `
with e as (
  select * from jsonb_to_recordset($1::jsonb) as t(run_id uuid, attempt int, n_seq bigint, running boolean,
    s_at timestamptz, s_worker text, p_pct float8, p_phase text, p_rank int, t_seq bigint, t_kind text,
    t_at timestamptz, outputs jsonb, rows jsonb, timings jsonb, error_code text, error_message text)
),
y as materialized (
  -- An array, not a semi-join: the planner cannot tell how few rows e has and would scan the table.
  select r.* from runs r where r.id = any(array(select run_id from e)) order by r.id for update
),
u as (
  update runs x set
    attempt = e.attempt,
    status = case when c.terminal_wins then e.t_kind when c.becomes_running then 'running'
      when c.newer then 'queued' else y.status end,
    last_event_seq = case when c.terminal_wins then e.t_seq when c.seq_advances then e.n_seq else y.last_event_seq end,
    ${field('started_at', 'started_wins', 'e.s_at')},
    ${field('worker_instance', 'started_wins', 'e.s_worker')},
    ${field('progress', 'progress_wins', 'e.p_pct', '0')},
    ${field('phase', 'progress_wins', 'e.p_phase')},
    ${field('finished_at', 'terminal_wins', 'e.t_at')},
    ${field('output_links', 'terminal_wins', 'e.outputs')},
    ${field('row_counts', 'terminal_wins', 'e.rows')},
    ${field('timings', 'terminal_wins', 'e.timings')},
    ${field('error_code', 'terminal_wins', 'e.error_code')},
    ${field('error_message', 'terminal_wins', 'e.error_message')}
  from y join e on e.run_id = y.id
  cross join lateral (select ${NEWER} as newer, ${TERMINAL_WINS} as terminal_wins, ${STARTED_WINS} as started_wins,
    ${PROGRESS_WINS} as progress_wins, ${BECOMES_RUNNING} as becomes_running, ${SEQ_ADVANCES} as seq_advances) c
  where x.id = y.id and e.attempt >= y.attempt
    and (c.terminal_wins or c.started_wins or c.progress_wins or c.becomes_running or c.seq_advances)
  returning x.id, x.status, x.attempt, x.started_at, x.finished_at, x.timings, c.terminal_wins, c.started_wins,
    c.progress_wins, c.becomes_running, c.seq_advances
)
select y.id, y.status as old_status, y.attempt as old_attempt, u.id is not null as updated,
  coalesce(u.status, y.status) as status, coalesce(u.attempt, y.attempt) as attempt,
  coalesce(u.terminal_wins, false) as terminal_wins, coalesce(u.started_wins, false) as started_wins,
  coalesce(u.progress_wins, false) as progress_wins, coalesce(u.becomes_running, false) as becomes_running,
  coalesce(u.seq_advances, false) as seq_advances,
  coalesce(u.id is not null and (y.status in (${TERMINAL_LIST}) or u.status in (${TERMINAL_LIST}))
    and (y.status, y.started_at, y.finished_at, y.timings) is distinct from (u.status, u.started_at, u.finished_at, u.timings),
    false) as stats_changed,
  y.job_id, j.kind, j.report_type, u.started_at, u.finished_at
from y left join u on u.id = y.id
cross join lateral (select kind, report_type from jobs where id = y.job_id) j`;

/** Recomputes the statistics of the jobs in `$1` (uuid[]) from their runs; run after locking those jobs. */
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
where j.id = any($1::uuid[])`;

/** One event to project: its `Ppc-Type`, body and stream sequence. */
export interface RunEventEntry {
  type: string;
  body: RunEventBody;
  streamSeq: number;
}

interface ProjectedRow {
  id: string;
  old_status: string;
  old_attempt: number;
  updated: boolean;
  status: string;
  attempt: number;
  terminal_wins: boolean;
  started_wins: boolean;
  progress_wins: boolean;
  becomes_running: boolean;
  seq_advances: boolean;
  stats_changed: boolean;
  job_id: string;
  kind: 'report' | 'urlcheck';
  report_type: string | null;
  started_at: Date | null;
  finished_at: Date | null;
}

async function withClient<T>(orm: MikroORM, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await rawPool(orm).connect();
  try {
    return await fn(client);
  } finally {
    client.release();
  }
}

async function inTransaction<T>(client: pg.PoolClient, fn: () => Promise<T>): Promise<T> {
  await client.query('begin');
  try {
    const result = await fn();
    await client.query('commit');
    return result;
  } catch (err) {
    await client.query('rollback').catch(() => {});
    throw err;
  }
}

const PROJECT_STMT = { name: 'ppc_project_run_batch', text: PROJECT_SQL };
const LOCK_JOBS_STMT = {
  name: 'ppc_lock_jobs',
  text: 'select id from jobs where id = any($1::uuid[]) order by id for no key update',
};
const JOB_STATS_STMT = { name: 'ppc_job_stats_batch', text: JOB_STATS_SQL };

/**
 * Projects a batch of run events: the events are folded per run (see `RunDelta`) and written in one statement,
 * a transaction of its own (one commit, so one WAL flush for the whole batch); then the statistics of every
 * job whose runs' outcome changed are recomputed in a second transaction, which locks the jobs (in id order)
 * before it reads their runs, so a concurrent recomputation's runs are seen. Results are in the order of
 * `entries`: per run, the events standing for a condition that won are `applied` (the latest started, the
 * highest progress, the earliest terminal, the newest non-terminal sequence), the others `ignored`.
 */
export async function projectRunEvents(orm: MikroORM, entries: readonly RunEventEntry[]): Promise<ProjectResult[]> {
  const results: ProjectResult[] = new Array(entries.length);
  const byRun = new Map<string, number[]>();
  for (const [i, entry] of entries.entries()) {
    if (!UUID.test(entry.body.runId)) {
      results[i] = { outcome: 'unknown-run', statsUpdated: false };
      continue;
    }
    const runId = entry.body.runId.toLowerCase();
    const events = byRun.get(runId);
    if (events) events.push(i);
    else byRun.set(runId, [i]);
  }
  if (byRun.size === 0) return results;
  const folds = [...byRun].map(([runId, events]) => foldRun(entries, runId, events));
  const deltas = JSON.stringify(folds.map((f) => f.delta));

  await withClient(orm, async (client) => {
    const { rows } = await retryOnDeadlock(() => client.query<ProjectedRow>({ ...PROJECT_STMT, values: [deltas] }));
    const found = new Map(rows.map((r) => [r.id, r]));
    const jobs = [...new Set(rows.filter((r) => r.stats_changed).map((r) => r.job_id))].sort();
    // Statistics after the runs commit, in their own transaction: one holding run rows while it waits for a
    // job row would wait on (and deadlock with) batches of other replicas doing the same the other way round.
    if (jobs.length > 0) {
      await retryOnDeadlock(() =>
        inTransaction(client, async () => {
          await client.query({ ...LOCK_JOBS_STMT, values: [`{${jobs.join(',')}}`] });
          await client.query({ ...JOB_STATS_STMT, values: [`{${jobs.join(',')}}`] });
        }),
      );
    }
    for (const f of folds) {
      const row = found.get(f.delta.run_id);
      if (!row) {
        for (const i of f.events) results[i] = { outcome: 'unknown-run', statsUpdated: false };
        continue;
      }
      const applied = new Set<number | undefined>();
      if (row.terminal_wins) applied.add(f.terminal);
      if (row.started_wins) applied.add(f.started);
      if (row.progress_wins) applied.add(f.progress);
      // A winning terminal event sets the status and the sequence itself.
      if (row.seq_advances && !row.terminal_wins) applied.add(f.nonTerminal);
      if (row.becomes_running && !row.terminal_wins) applied.add(f.started ?? f.progress);
      for (const i of f.events) {
        results[i] = applied.has(i)
          ? { outcome: 'applied', status: row.status, attempt: row.attempt, statsUpdated: row.stats_changed }
          : { outcome: 'ignored', status: row.status, attempt: row.attempt, statsUpdated: false };
      }
      // The run just reached succeeded or failed with a known start: its wall time, for the task statistics.
      if (
        row.terminal_wins &&
        (row.status === 'succeeded' || row.status === 'failed') &&
        row.started_at &&
        row.finished_at &&
        f.terminal !== undefined
      ) {
        const finishedAt = new Date(row.finished_at);
        results[f.terminal] = {
          ...results[f.terminal]!,
          finished: {
            runId: row.id,
            kind: row.kind,
            reportType: row.report_type,
            durationMs: Math.max(0, finishedAt.getTime() - new Date(row.started_at).getTime()),
            finishedAt,
          },
        };
      }
    }
  });
  return results;
}

/**
 * Runs a statement or transaction again when PostgreSQL picked it as a deadlock victim (nothing of it was
 * applied, and the projection is idempotent); rows are locked in a fixed order, so this is rare.
 */
async function retryOnDeadlock<T>(fn: () => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      const deadlock = err instanceof DeadlockException || (err as { code?: string }).code === '40P01';
      if (!deadlock || i >= attempts) throw err;
      await new Promise((r) => setTimeout(r, Math.random() * 20 * i));
    }
  }
}

/** Projects one run event into its run row (see the module comment); safe to call again with the same event. */
export async function projectRunEvent(
  orm: MikroORM,
  type: string,
  body: RunEventBody,
  opts: ProjectOptions,
): Promise<ProjectResult> {
  const [result] = await projectRunEvents(orm, [{ type, body, streamSeq: opts.streamSeq }]);
  return result!;
}

/**
 * Group commit: events handed in while a batch is being written wait and go out together in the next batch,
 * so under load each commit carries many events, and when idle an event is written at once. At most
 * `parallel` batches are in flight, each on its own connection.
 */
export class RunEventBatcher {
  readonly #orm: MikroORM;
  readonly #maxBatch: number;
  readonly #parallel: number;
  #queue: { entry: RunEventEntry; resolve: (r: ProjectResult) => void; reject: (e: unknown) => void }[] = [];
  #inFlight = 0;

  constructor(orm: MikroORM, opts: { maxBatch?: number; parallel?: number } = {}) {
    this.#orm = orm;
    this.#maxBatch = opts.maxBatch ?? 500;
    this.#parallel = opts.parallel ?? 2;
  }

  project(entry: RunEventEntry): Promise<ProjectResult> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ entry, resolve, reject });
      this.#pump();
    });
  }

  #pump(): void {
    while (this.#inFlight < this.#parallel && this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#maxBatch);
      this.#inFlight += 1;
      projectRunEvents(
        this.#orm,
        batch.map((b) => b.entry),
      )
        .then(
          (results) => {
            for (const [i, b] of batch.entries()) b.resolve(results[i]!);
          },
          async (err: unknown) => {
            if (batch.length === 1 || !isDataError(err)) {
              for (const b of batch) b.reject(err);
              return;
            }
            // One bad event (a timestamp PostgreSQL rejects) must not hold back the others: each alone, so only
            // it fails (and is given up on by the consumer) while the rest are projected.
            for (const b of batch) {
              await projectRunEvents(this.#orm, [b.entry]).then(([r]) => b.resolve(r!), b.reject);
            }
          },
        )
        .finally(() => {
          this.#inFlight -= 1;
          this.#pump();
        });
    }
  }
}

/** An error about an event's data (ours, or PostgreSQL's class 22 "data exception"), not about the database. */
const isDataError = (err: unknown) =>
  err instanceof TypeError || /^22/.test(String((err as { code?: unknown }).code ?? ''));

/** A run that just reached succeeded or failed, with its wall time: what the autoscaler's task statistics learn from. */
export interface FinishedRun {
  runId: string;
  kind: 'report' | 'urlcheck';
  reportType: string | null;
  durationMs: number;
  finishedAt: Date;
}

export interface RecorderOptions {
  /** Events handled at once (waiting for or in a batch); default 1500. */
  concurrency?: number;
  /** Events per batch at most; default 500. */
  maxBatch?: number;
  /** Transactions in flight at once; default 2. */
  parallel?: number;
  /** Told of each run whose terminal event this recorder applied (task statistics); must not block. */
  onFinished?(run: FinishedRun): void;
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
  const batcher = new RunEventBatcher(orm, opts);
  const consumption = await consume(
    ctx.js,
    consumers.systemRecorder,
    runEventMessages,
    async (body, m) => {
      const res = await batcher.project({ type: m.type, body, streamSeq: m.streamSeq });
      if (res.finished) opts.onFinished?.(res.finished);
      if (res.outcome === 'unknown-run')
        log.warn({ runId: body.runId, type: m.type, seq: m.streamSeq }, 'event for an unknown run, skipped');
    },
    {
      concurrency: opts.concurrency ?? 1500,
      log: ctx.log,
      metrics: ctx.metrics,
      // No watchMaxDeliveries: it deletes the given-up message from its stream, and EVENTS is shared
      // (the notifier and gateway replays read the same events).
    },
  );
  return ctx.track ? ctx.track(consumption) : consumption;
}
