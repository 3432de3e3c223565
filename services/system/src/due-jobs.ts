/**
 * `enqueue-due-jobs`: turns every due scheduled job into a queued run and its task message.
 *
 * One transaction per batch: claim up to `batchSize` due jobs (`enabled and next_run_at <= now`, oldest
 * first) with `FOR UPDATE OF j SKIP LOCKED`, so concurrent replicas split the work instead of waiting on
 * each other; insert a `schedule` run per job for the slot `scheduled_for = next_run_at`, its task as an
 * outbox row (`addToOutbox`, msg id `run.<runId>`), and advance `next_run_at` to the job's next cron fire
 * time after `now` in the job's time zone. Missed slots (the mesh was down) collapse into that one run.
 *
 * A duplicate run is impossible twice over: the job row stays locked until its `next_run_at` has moved
 * on, and the run insert is `on conflict (job_id, scheduled_for) do nothing` against the unique slot, so
 * even a job whose `next_run_at` was moved back to an enqueued slot gets no second run (only advanced).
 *
 * Fenced (design pitfall): with `fencingToken`, the tick first raises the `clock` fence in Postgres and each
 * batch holds it, so a tick of a deposed clock leader enqueues nothing once a newer leader's tick was
 * admitted; every run records the token that enqueued it.
 *
 * A job that can no longer run is disabled with a recorded reason instead: its account is removed or
 * missing, its connection is revoked or missing, its schedule (cron, time zone) is invalid, or its stored
 * fields do not make a valid task message.
 */
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import {
  addToOutbox,
  buildRunTask,
  cannotRunReason,
  holdFence,
  newId,
  nextFireAfter,
  raiseFence,
  type RunTask,
  StaleFencingTokenError,
} from '@ppc/lib/db';
import type { MessageDef } from '@ppc/proto';

/** Moved to lib (the gateway computes next fire times too); re-exported for existing callers. */
export { nextFireAfter };

export interface EnqueueDueJobsOptions {
  /** The tick's time: jobs with `next_run_at <= now` are due; the next fire time is computed after it. */
  now: Date;
  /** Region whose workers take the tasks (`tasks.report.<region>.<type>`, `tasks.urlcheck.<region>`). */
  region: string;
  /** Jobs claimed per transaction. Default 500. */
  batchSize?: number;
  /** At most this many batches per call; whatever is left is due at the next tick. Default 100. */
  maxBatches?: number;
  /** The tick's fencing token (clock lease revision); omitted only by callers outside the clock's schedule. */
  fencingToken?: number;
  /** Checked between batches: stop early (shutdown); committed batches stay committed. */
  signal?: AbortSignal;
  /** Test hook: called before each batch's transaction begins (1 for the first batch). */
  beforeBatch?(batch: number): Promise<void> | void;
  /** Test hook: called inside each batch's transaction, after the claim, while the rows are locked. */
  onClaim?(jobIds: string[]): Promise<void> | void;
}

export interface EnqueueDueJobsResult {
  /** Transactions committed. */
  batches: number;
  /** Due jobs this call locked. */
  claimed: number;
  /** Runs created (each with its outbox row). */
  enqueued: number;
  /** Due slots that already had a run (no second run or message; the job was only advanced). */
  alreadyEnqueued: number;
  /** Jobs disabled because they can no longer run. */
  disabled: number;
  /** True when it stopped at `maxBatches` or on `signal` with more jobs possibly due. */
  truncated: boolean;
  /** True when the tick's fencing token was refused (a newer clock leader's tick was admitted). */
  stale: boolean;
}

/** The fence shared by every effect of clock ticks. */
export const CLOCK_FENCE = 'clock';

interface DueRow {
  id: string;
  organization_id: string;
  account_id: string;
  kind: 'report' | 'urlcheck';
  report_type: string | null;
  params: Record<string, unknown>;
  output: Record<string, unknown>;
  cron: string | null;
  time_zone: string;
  next_run_at: Date | string;
  platform: string | null;
  connection_id: string | null;
  account_status: string | null;
  connection_status: string | null;
}

// `of j`: only the job rows are locked, so jobs sharing an account never block or skip each other.
const CLAIM_SQL = `
select j.id, j.organization_id, j.account_id, j.kind, j.report_type, j.params, j.output, j.cron, j.time_zone,
       j.next_run_at, a.platform, a.connection_id, a.status as account_status, c.status as connection_status
  from jobs j
  left join ad_accounts a on a.id = j.account_id
  left join connections c on c.id = a.connection_id
 where j.enabled and j.next_run_at <= ?
 order by j.next_run_at
 limit ?
 for update of j skip locked`;

// The slot comes from the locked row itself (not a JS round trip), so it keeps Postgres' microseconds.
const INSERT_RUNS_SQL = `
insert into runs (id, organization_id, job_id, trigger, scheduled_for, status, attempt, fencing_token)
select r.run_id, j.organization_id, j.id, 'schedule', j.next_run_at, 'queued', 1, ?::bigint
  from jsonb_to_recordset(?::jsonb) as r(run_id uuid, job_id uuid)
  join jobs j on j.id = r.job_id
    on conflict (job_id, scheduled_for) do nothing
returning id`;

const ADVANCE_SQL = `
update jobs j set next_run_at = r.next_run_at, updated_at = now()
  from jsonb_to_recordset(?::jsonb) as r(job_id uuid, next_run_at timestamptz)
 where j.id = r.job_id`;

const DISABLE_SQL = `
update jobs j set enabled = false, disabled_reason = r.reason, updated_at = now()
  from jsonb_to_recordset(?::jsonb) as r(job_id uuid, reason text)
 where j.id = r.job_id`;

/** Why a job can no longer run, or null when it can. */
function goneReason(row: DueRow): string | null {
  return cannotRunReason({
    accountId: row.account_id,
    accountStatus: row.account_status,
    connectionId: row.connection_id,
    connectionStatus: row.connection_status,
  });
}

/** The job's task message for a new scheduled run, validated; throws MessageValidationError naming the bad field. */
function taskFor(row: DueRow, runId: string, region: string, enqueuedAt: string): RunTask {
  return buildRunTask({
    runId,
    jobId: row.id,
    orgId: row.organization_id,
    accountId: row.account_id,
    connectionId: row.connection_id,
    platform: row.platform,
    kind: row.kind,
    reportType: row.report_type,
    params: row.params,
    output: row.output,
    region,
    trigger: 'schedule',
    attempt: 1,
    enqueuedAt,
  });
}

/** One batch in its own transaction. */
type BatchCounts = Pick<EnqueueDueJobsResult, 'claimed' | 'enqueued' | 'alreadyEnqueued' | 'disabled'>;

async function enqueueBatch(em: EntityManager, opts: EnqueueDueJobsOptions, batchSize: number): Promise<BatchCounts> {
  const result: BatchCounts = { claimed: 0, enqueued: 0, alreadyEnqueued: 0, disabled: 0 };
  if (opts.fencingToken !== undefined) await holdFence(em, CLOCK_FENCE, opts.fencingToken, 'enqueue-due-jobs tick');
  const rows = await em.execute<DueRow[]>(CLAIM_SQL, [opts.now, batchSize]);
  if (rows.length === 0) return result;
  await opts.onClaim?.(rows.map((r) => r.id));

  const enqueuedAt = opts.now.toISOString();
  const disable: { job_id: string; reason: string }[] = [];
  const advance: { job_id: string; next_run_at: string | null }[] = [];
  const staged = new Map<string, { row: DueRow; task: RunTask }>();

  for (const row of rows) {
    const gone = goneReason(row);
    if (gone) {
      disable.push({ job_id: row.id, reason: gone });
      continue;
    }
    let next: Date | null = null;
    if (row.cron !== null) {
      try {
        next = nextFireAfter(row.cron, row.time_zone, opts.now);
      } catch (err) {
        disable.push({
          job_id: row.id,
          reason: `invalid schedule ${JSON.stringify(row.cron)} in ${row.time_zone}: ${(err as Error).message}`,
        });
        continue;
      }
    }
    const runId = newId();
    let task: RunTask;
    try {
      task = taskFor(row, runId, opts.region, enqueuedAt);
    } catch (err) {
      disable.push({ job_id: row.id, reason: `cannot build its task: ${(err as Error).message}` });
      continue;
    }
    staged.set(runId, { row, task });
    // No cron: a one-off run at next_run_at, after which the job is on demand only.
    advance.push({ job_id: row.id, next_run_at: next?.toISOString() ?? null });
  }

  if (staged.size > 0) {
    const pairs = [...staged].map(([runId, s]) => ({ run_id: runId, job_id: s.row.id }));
    const inserted = await em.execute<{ id: string }[]>(INSERT_RUNS_SQL, [
      opts.fencingToken ?? null,
      JSON.stringify(pairs),
    ]);
    for (const { id } of inserted) {
      const s = staged.get(id);
      if (!s) continue;
      const def: MessageDef = s.task.def;
      addToOutbox(em, def, s.task.body, { organizationId: s.row.organization_id, runId: id });
    }
    result.enqueued += inserted.length;
    result.alreadyEnqueued += staged.size - inserted.length;
    await em.flush();
    await em.execute(ADVANCE_SQL, [JSON.stringify(advance)]);
  }
  if (disable.length > 0) {
    await em.execute(DISABLE_SQL, [JSON.stringify(disable)]);
    result.disabled += disable.length;
  }
  result.claimed = rows.length;
  return result;
}

/**
 * Enqueues every job due at `now`, batch by batch, until none is left (that this replica can lock) or a
 * bound is reached. Safe to run on any number of replicas at once.
 */
export async function enqueueDueJobs(orm: MikroORM, opts: EnqueueDueJobsOptions): Promise<EnqueueDueJobsResult> {
  const batchSize = opts.batchSize ?? 500;
  const maxBatches = opts.maxBatches ?? 100;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize: expected >= 1, got ${batchSize}`);
  const result: EnqueueDueJobsResult = {
    batches: 0,
    claimed: 0,
    enqueued: 0,
    alreadyEnqueued: 0,
    disabled: 0,
    truncated: false,
    stale: false,
  };
  if (opts.fencingToken !== undefined && !(await raiseFence(orm.em.fork(), CLOCK_FENCE, opts.fencingToken))) {
    result.stale = true;
    return result;
  }
  for (;;) {
    if (result.batches >= maxBatches || opts.signal?.aborted) {
      result.truncated = true;
      break;
    }
    // Counted only once the batch has committed.
    let batch: BatchCounts;
    await opts.beforeBatch?.(result.batches + 1);
    try {
      batch = await orm.em.fork().transactional((em) => enqueueBatch(em, opts, batchSize));
    } catch (err) {
      if (!(err instanceof StaleFencingTokenError)) throw err;
      result.stale = true;
      break;
    }
    const claimed = batch.claimed;
    if (claimed === 0) break;
    result.batches += 1;
    result.claimed += claimed;
    result.enqueued += batch.enqueued;
    result.alreadyEnqueued += batch.alreadyEnqueued;
    result.disabled += batch.disabled;
    // Fewer than a full batch: the rest (if any) is locked by another replica, which enqueues it.
    if (claimed < batchSize) break;
  }
  return result;
}
