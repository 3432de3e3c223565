import type { Database as MikroORM } from '@ppc/lib/db';
import { DeadlockException } from '@mikro-orm/postgresql';
import pg from 'pg';
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
 * The recorder writes events in batches, one transaction each (group commit: one WAL flush carries many
 * events), locking rows in a fixed order so concurrent batches never deadlock; see `projectRunEvents`.
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
  /** Set when this event finished the run (succeeded or failed, with a known start): its wall time. */
  finished?: FinishedRun;
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

export const PROJECT_SQL = `
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

/** One event to project: its `Ppc-Type`, body and stream sequence. */
export interface RunEventEntry {
  type: string;
  body: RunEventBody;
  streamSeq: number;
}

type ProjectedRow = { job_id: string; status: string; attempt: number; old_status: string; old_attempt: number };

/**
 * The projection's own connections. Its statements go out as named (prepared) statements, planned once per
 * connection: planning PROJECT_SQL took ~3 ms of the ~3.5 ms each unnamed execution cost, which MikroORM's
 * `execute` cannot avoid. Idle connections close by themselves and never keep the process alive.
 */
const rawPools = new WeakMap<MikroORM, pg.Pool>();
function poolOf(orm: MikroORM): pg.Pool {
  let pool = rawPools.get(orm);
  if (!pool) {
    pool = new pg.Pool({
      connectionString: orm.config.get('clientUrl'),
      max: 4,
      idleTimeoutMillis: 10_000,
      allowExitOnIdle: true,
    });
    // A connection that dies while idle (server restart) is dropped from the pool, not thrown at the process.
    pool.on('error', () => {});
    rawPools.set(orm, pool);
  }
  return pool;
}

async function inTransaction<T>(orm: MikroORM, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await poolOf(orm).connect();
  try {
    await client.query('begin');
    const result = await fn(client);
    await client.query('commit');
    return result;
  } catch (err) {
    await client.query('rollback').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

/** `?` placeholders (MikroORM's) as `$n` (PostgreSQL's), for the raw statements. */
const numbered = (sql: string) => {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
};
const PROJECT_STMT = { name: 'ppc_project_run_event', text: numbered(PROJECT_SQL) };
const LOCK_JOB_STMT = { name: 'ppc_lock_job', text: 'select id from jobs where id = $1::uuid for update' };
const JOB_STATS_STMT = { name: 'ppc_job_stats', text: numbered(JOB_STATS_SQL) };

async function applyEvent(client: pg.PoolClient, entry: RunEventEntry): Promise<ProjectedRow | undefined> {
  const e = eventRow(entry.type, entry.body, entry.streamSeq);
  const { rows } = await client.query<ProjectedRow>({
    ...PROJECT_STMT,
    values: [
      entry.body.runId,
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
    ],
  });
  return rows[0];
}

/** What the statistics read changed: a terminal event won, or a newer attempt replaced a finished one, or a
 * finished run learnt when it started (its `started` event came after its outcome). */
const changesOutcome = (entry: RunEventEntry, row: ProjectedRow) =>
  eventRow(entry.type, entry.body, entry.streamSeq).rank === 3 || isTerminal(row.old_status);

/**
 * Projects a batch of run events in one transaction (one commit, so one WAL flush for the whole batch), then
 * recomputes the statistics of every job whose runs' outcome changed in a second one. Each locks its rows in a
 * fixed order (runs by id; jobs by id), so concurrent batches on other connections or replicas never deadlock.
 * Results are in the order of `entries`.
 */
export async function projectRunEvents(orm: MikroORM, entries: readonly RunEventEntry[]): Promise<ProjectResult[]> {
  const results: ProjectResult[] = new Array(entries.length);
  const dominatedBy = findDominated(entries);
  const valid = entries
    .map((entry, i) => ({ entry, i }))
    .filter(({ entry, i }) => {
      if (dominatedBy.has(i)) return false;
      if (UUID.test(entry.body.runId)) return true;
      results[i] = { outcome: 'unknown-run', statsUpdated: false };
      return false;
    })
    .sort((a, b) =>
      a.entry.body.runId < b.entry.body.runId
        ? -1
        : a.entry.body.runId > b.entry.body.runId
          ? 1
          : a.entry.streamSeq - b.entry.streamSeq,
    );
  if (valid.length === 0) return results;
  const jobs = new Set<string>();
  await retryOnDeadlock(() =>
    inTransaction(orm, async (client) => {
      const unmatched: { entry: RunEventEntry; i: number }[] = [];
      for (const v of valid) {
        const row = await applyEvent(client, v.entry);
        if (!row) {
          unmatched.push(v);
          continue;
        }
        const statsUpdated = changesOutcome(v.entry, row);
        if (statsUpdated) jobs.add(row.job_id);
        results[v.i] = { outcome: 'applied', status: row.status, attempt: row.attempt, statsUpdated };
      }
      if (unmatched.length > 0) {
        const ids = [...new Set(unmatched.map((u) => u.entry.body.runId))];
        const { rows: current } = await client.query<{ id: string; status: string; attempt: number }>(
          'select id, status, attempt from runs where id = any($1::uuid[])',
          [`{${ids.join(',')}}`],
        );
        const byId = new Map(current.map((r) => [r.id, r]));
        for (const u of unmatched) {
          const run = byId.get(u.entry.body.runId);
          results[u.i] = run
            ? { outcome: 'ignored', status: run.status, attempt: run.attempt, statsUpdated: false }
            : { outcome: 'unknown-run', statsUpdated: false };
        }
      }
    }),
  );
  // Statistics after the runs commit, in their own transaction: one holding run rows while waiting for a job
  // row deadlocks with another recomputing that job's statistics (whose reads wait on those runs' updates).
  if (jobs.size > 0) {
    await retryOnDeadlock(() =>
      inTransaction(orm, async (client) => {
        for (const jobId of [...jobs].sort()) {
          await client.query({ ...LOCK_JOB_STMT, values: [jobId] });
          await client.query({ ...JOB_STATS_STMT, values: [jobId] });
        }
      }),
    );
  }
  // The runs these events finished, in one query for the batch (task statistics learn their wall time).
  const finishing = valid.filter(
    (v) =>
      results[v.i]?.outcome === 'applied' &&
      (v.entry.type === types.succeeded || v.entry.type === types.failed) &&
      (results[v.i]?.status === 'succeeded' || results[v.i]?.status === 'failed'),
  );
  if (finishing.length > 0) {
    const byRun = new Map(
      (
        await finishedRuns(
          orm,
          finishing.map((v) => v.entry.body.runId),
        )
      ).map((f) => [f.runId, f]),
    );
    for (const v of finishing) {
      const f = byRun.get(v.entry.body.runId);
      if (f) results[v.i] = { ...results[v.i]!, finished: f };
    }
  }
  for (const [i, by] of dominatedBy) {
    const { finished: _finished, ...r } = results[by]!;
    results[i] = r.outcome === 'unknown-run' ? r : { ...r, outcome: 'ignored', statsUpdated: false };
  }
  return results;
}

/**
 * Runs a transaction again when PostgreSQL picked it as a deadlock victim (nothing of it was applied, and the
 * projection is idempotent); rows are locked in a fixed order, so this is rare, but concurrent batches on two
 * cores showed it.
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

/**
 * Events of a batch that cannot change anything the batch's other events do not (index → index of one that
 * makes it redundant), so they are not written: duplicates; a progress event of the same run and attempt
 * as a later one (higher sequence) with at least its percent and phase; a `queued` event followed by any
 * other non-terminal event of its attempt. Whatever order the two are applied in, the row ends the same
 * with or without the redundant one (the rules above only ever keep the greater value, and the later
 * sequence number covers `last_event_seq`), and a dominating event always lands in the same transaction.
 */
function findDominated(entries: readonly RunEventEntry[]): Map<number, number> {
  const dominated = new Map<number, number>();
  const groups = new Map<string, number[]>();
  for (const [i, e] of entries.entries()) {
    const key = `${e.body.runId}|${e.body.attempt}`;
    const g = groups.get(key);
    if (g) g.push(i);
    else groups.set(key, [i]);
  }
  for (const group of groups.values()) {
    if (group.length < 2) continue;
    // Newest first: each event is compared with the best of those after it.
    group.sort((a, b) => entries[b]!.streamSeq - entries[a]!.streamSeq);
    const seen = new Map<number, number>();
    let newestNonTerminal = -1;
    let bestProgress = -1;
    for (const i of group) {
      const e = entries[i]!;
      const twin = seen.get(e.streamSeq);
      if (twin !== undefined) {
        dominated.set(i, twin);
        continue;
      }
      seen.set(e.streamSeq, i);
      if (e.type === types.progress) {
        const b = e.body as BodyOf<typeof RunProgressMsg>;
        const best = bestProgress >= 0 ? (entries[bestProgress]!.body as BodyOf<typeof RunProgressMsg>) : undefined;
        if (
          best &&
          (best.percent > b.percent ||
            (best.percent === b.percent && PHASES.indexOf(best.phase) >= PHASES.indexOf(b.phase)))
        ) {
          dominated.set(i, bestProgress);
          continue;
        }
        bestProgress = i;
      }
      if (e.type === types.queued && newestNonTerminal >= 0) {
        dominated.set(i, newestNonTerminal);
        continue;
      }
      if (e.type === types.queued || e.type === types.started || e.type === types.progress) {
        if (newestNonTerminal < 0) newestNonTerminal = i;
      }
    }
  }
  return dominated;
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
    this.#maxBatch = opts.maxBatch ?? 200;
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
          (err: unknown) => {
            for (const b of batch) b.reject(err);
          },
        )
        .finally(() => {
          this.#inFlight -= 1;
          this.#pump();
        });
    }
  }
}

/** A run that just reached succeeded or failed, with its wall time: what the autoscaler's task statistics learn from. */
export interface FinishedRun {
  runId: string;
  kind: 'report' | 'urlcheck';
  reportType: string | null;
  durationMs: number;
  finishedAt: Date;
}

const FINISHED_SQL = `
select r.id, j.kind, j.report_type, r.started_at, r.finished_at
  from runs r join jobs j on j.id = r.job_id
 where r.id = any(?::uuid[]) and r.status in ('succeeded', 'failed') and r.started_at is not null
   and r.finished_at is not null`;

/** The runs among `runIds` that finished (succeeded or failed) with a known start, and how long they took. */
export async function finishedRuns(orm: MikroORM, runIds: string[]): Promise<FinishedRun[]> {
  if (runIds.length === 0) return [];
  const rows = await orm.em
    .fork()
    .execute<
      { id: string; kind: 'report' | 'urlcheck'; report_type: string | null; started_at: Date; finished_at: Date }[]
    >(FINISHED_SQL, [`{${runIds.join(',')}}`]);
  return rows.map((r) => ({
    runId: r.id,
    kind: r.kind,
    reportType: r.report_type,
    durationMs: Math.max(0, new Date(r.finished_at).getTime() - new Date(r.started_at).getTime()),
    finishedAt: new Date(r.finished_at),
  }));
}

export interface RecorderOptions {
  /** Events handled at once (waiting for or in a batch); default 512. */
  concurrency?: number;
  /** Events per transaction at most; default 200. */
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
      concurrency: opts.concurrency ?? 512,
      log: ctx.log,
      metrics: ctx.metrics,
      // No watchMaxDeliveries: it deletes the given-up message from its stream, and EVENTS is shared
      // (the notifier and gateway replays read the same events).
    },
  );
  return ctx.track ? ctx.track(consumption) : consumption;
}
