/**
 * Mail on run events: a run's failure, and a job's first success after failures.
 *
 * The notifier and the run recorder consume the same events independently and in either order, so nothing
 * here reads what the recorder derives from them (`jobs.consecutive_failures` may already count this
 * event, or not yet). Decisions are made from the event itself and from the runs table:
 *
 * - `failed`: mail, unless the job turned it off, or the runs table already shows that this attempt ended
 *   differently first (the recorder keeps the attempt's first terminal event, so a `failed` published after
 *   a `succeeded` of the same attempt is a duplicate outcome, not news).
 * - `succeeded`: mail when the job's previous finished run (failed or succeeded, by finish time, excluding
 *   this run and cancelled runs) failed. Decided once the recorder has acknowledged every event up to this
 *   one (its consumer's ack floor; naks of `projectionWaitMs` × delivery count until then, at most until the last
 *   delivery), so the previous run's failure, earlier in the stream, is in the table; and no recovery is
 *   announced for a success the recorder did not take (its attempt had already failed or been cancelled,
 *   or a newer attempt replaced it).
 *
 * Every recipient gets their own mail with their own dedupe key (see `ledger.ts`).
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import type { BodyOf, RunFailedMsg, RunSucceededMsg } from '@ppc/proto';
import { RetryableError } from '@ppc/lib/errors';
import { rawPool } from '../raw-pool.ts';
import { type NotifyDeps, resolveNotifierConfig } from './config.ts';
import { type Delivery, deliver, keys, settle } from './ledger.ts';
import { jobRecipients, parseNotifySettings } from './recipients.ts';
import { renderRunFailed, renderRunRecovered } from './templates.ts';

export interface RunEventMeta {
  /** Stream sequence of the event in `EVENTS`. */
  streamSeq: number;
  deliveryCount: number;
  isLastAttempt: boolean;
  signal?: AbortSignal;
  /** Test hook, see `DeliverOptions`. */
  afterDeliver?(delivery: Delivery): Promise<void> | void;
  /**
   * True once the run recorder has acknowledged every run event up to `streamSeq` (its consumer's ack floor);
   * may wait a moment for it. Without it, a success is decided once the runs table shows this run's own outcome.
   */
  recorderCaughtUp?(streamSeq: number): Promise<boolean>;
}

export interface RunEventOutcome {
  /** `notified`: deliveries were attempted (see each); `skipped`: no mail is due, with the reason. */
  action: 'notified' | 'skipped';
  reason?: string;
  deliveries: Delivery[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TERMINAL = ['succeeded', 'failed', 'cancelled'];

interface RunContext {
  id: string;
  organization_id: string;
  job_id: string;
  status: string;
  attempt: number;
  last_event_seq: string | number;
  job_name: string;
  notify: unknown;
  created_by_id: string | null;
  org_name: string;
  account_name: string | null;
}

/** The run with its job, organization and account, scoped to the event's organization. */
async function loadRun(em: EntityManager, runId: string, orgId: string): Promise<RunContext | undefined> {
  if (!UUID.test(runId) || !UUID.test(orgId)) return undefined;
  const rows = await em.execute<RunContext[]>(
    `select r.id, r.organization_id, r.job_id, r.status, r.attempt, r.last_event_seq,
            j.name as job_name, j.notify, j.created_by_id, o.name as org_name, a.name as account_name
       from runs r
       join jobs j on j.id = r.job_id
       join organizations o on o.id = r.organization_id
       left join ad_accounts a on a.id = j.account_id
      where r.id = ?::uuid and r.organization_id = ?::uuid`,
    [runId, orgId],
  );
  return rows[0];
}

/**
 * A succeeded event's run (as `loadRun`) and the status of the job's previous finished run (failed or
 * succeeded, by finish time, before this success, not this run). Every success needs it (one in ten run
 * events), so the successes being decided at the same moment (a refresh of the recorder's floor lets many
 * through at once) share one named statement on the raw pool: one round trip instead of one each.
 */
const SUCCEEDED_RUNS = {
  name: 'ppc_notify_succeeded_runs',
  text: `select q.i, r.id, r.organization_id, r.job_id, r.status, r.attempt, r.last_event_seq,
            j.name as job_name, j.notify, j.created_by_id, o.name as org_name, a.name as account_name,
            (select p.status from runs p
              where p.job_id = r.job_id and p.id <> r.id and p.status in ('succeeded', 'failed')
                and p.finished_at < q.at
              order by p.finished_at desc limit 1) as previous
       from unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) with ordinality as q(id, org, at, i)
       join runs r on r.id = q.id and r.organization_id = q.org
       join jobs j on j.id = r.job_id
       join organizations o on o.id = r.organization_id
       left join ad_accounts a on a.id = j.account_id`,
};

type SucceededRun = RunContext & { previous: string | null };
interface Lookup {
  body: BodyOf<typeof RunSucceededMsg>;
  resolve(run: SucceededRun | undefined): void;
  reject(err: unknown): void;
}

/** Lookups asked for while one is being read go together in the next read. */
class SucceededRunLoader {
  readonly #orm: NotifyDeps['orm'];
  #queue: Lookup[] = [];
  #reading = false;
  constructor(orm: NotifyDeps['orm']) {
    this.#orm = orm;
  }
  load(body: BodyOf<typeof RunSucceededMsg>): Promise<SucceededRun | undefined> {
    if (!UUID.test(body.runId) || !UUID.test(body.orgId)) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      this.#queue.push({ body, resolve, reject });
      // In a microtask: the successes released together all join the first read.
      if (this.#queue.length === 1 && !this.#reading) queueMicrotask(() => this.#read());
    });
  }
  #read(): void {
    if (this.#reading || this.#queue.length === 0) return;
    const batch = this.#queue.splice(0, 500);
    this.#reading = true;
    const list = (f: (b: Lookup['body']) => string) => `{${batch.map((l) => f(l.body)).join(',')}}`;
    rawPool(this.#orm)
      .query<SucceededRun & { i: string }>({
        ...SUCCEEDED_RUNS,
        values: [list((b) => b.runId), list((b) => b.orgId), list((b) => `"${b.at}"`)],
      })
      .then(
        ({ rows }) => {
          const byIndex = new Map(rows.map(({ i, ...run }) => [Number(i), run]));
          for (const [k, l] of batch.entries()) l.resolve(byIndex.get(k + 1));
        },
        (err: unknown) => {
          for (const l of batch) l.reject(err);
        },
      )
      .finally(() => {
        this.#reading = false;
        this.#read();
      });
  }
}

const loaders = new WeakMap<NotifyDeps['orm'], SucceededRunLoader>();
function loadSucceededRun(deps: NotifyDeps, body: BodyOf<typeof RunSucceededMsg>): Promise<SucceededRun | undefined> {
  let loader = loaders.get(deps.orm);
  if (!loader) {
    loader = new SucceededRunLoader(deps.orm);
    loaders.set(deps.orm, loader);
  }
  return loader.load(body);
}

const skipped = (reason: string): RunEventOutcome => ({ action: 'skipped', reason, deliveries: [] });
const runUrl = (publicUrl: string, runId: string) => `${publicUrl}/runs/${encodeURIComponent(runId)}`;

export async function notifyRunFailed(
  deps: NotifyDeps,
  body: BodyOf<typeof RunFailedMsg>,
  meta: RunEventMeta,
): Promise<RunEventOutcome> {
  const config = resolveNotifierConfig(deps.config);
  const em = deps.orm.em.fork();
  const run = await loadRun(em, body.runId, body.orgId);
  if (!run) return skipped('unknown run');
  if (run.attempt === body.attempt && run.status !== 'failed' && TERMINAL.includes(run.status)) {
    if (Number(run.last_event_seq) < meta.streamSeq)
      return skipped(`attempt ${body.attempt} had already ${run.status}`);
  }
  const settings = parseNotifySettings(run.notify);
  warnProblems(deps, run, settings.problems);
  if (!settings.onFailure) return skipped('failure mail is turned off for the job');
  const recipients = await jobRecipients(em, { orgId: run.organization_id, createdBy: run.created_by_id, settings });
  if (recipients.length === 0) return noRecipients(deps, run);

  const mail = renderRunFailed({
    orgName: run.org_name,
    jobName: run.job_name,
    accountName: run.account_name,
    runId: run.id,
    attempt: body.attempt,
    errorCode: body.code,
    errorMessage: body.message,
    failedAt: body.at,
    runUrl: runUrl(config.publicUrl, run.id),
  });
  const deliveries: Delivery[] = [];
  for (const recipient of recipients) {
    deliveries.push(
      await deliver(
        deps,
        config,
        {
          key: keys.runFailed(run.id, body.attempt, recipient),
          kind: 'run-failed',
          orgId: run.organization_id,
          recipient,
          runId: run.id,
          jobId: run.job_id,
        },
        () => mail,
        { signal: meta.signal, giveUp: meta.isLastAttempt, afterDeliver: meta.afterDeliver },
      ),
    );
  }
  settle(deps, deliveries, config, meta);
  return { action: 'notified', deliveries };
}

export async function notifyRunSucceeded(
  deps: NotifyDeps,
  body: BodyOf<typeof RunSucceededMsg>,
  meta: RunEventMeta,
): Promise<RunEventOutcome> {
  const config = resolveNotifierConfig(deps.config);
  // Decide once the recorder has projected everything up to this event (the previous run's failure is
  // earlier in the stream), or, without a view of the recorder, at least this run's own outcome.
  const waitForRecorder = () =>
    new RetryableError(`the recorder has not projected run events up to ${meta.streamSeq} yet`, {
      // Growing waits: a recorder that lags by seconds costs a few deliveries, not all of them.
      retryAfterMs: config.projectionWaitMs * Math.max(1, meta.deliveryCount),
      code: 'NOTIFY_WAITING_FOR_RECORDER',
    });
  // The recorder's ack floor first: while it is behind (a backlog of events) nothing is read from the database.
  if (meta.recorderCaughtUp && !meta.isLastAttempt && !(await meta.recorderCaughtUp(meta.streamSeq))) {
    throw waitForRecorder();
  }
  const run = await loadSucceededRun(deps, body);
  if (!run) return skipped('unknown run');
  const settings = parseNotifySettings(run.notify);
  if (!settings.onRecovery) return skipped('recovery mail is turned off for the job');

  const projectedInTable = (r: RunContext) =>
    r.attempt > body.attempt || (r.attempt === body.attempt && TERMINAL.includes(r.status));
  if (!meta.recorderCaughtUp && !projectedInTable(run) && !meta.isLastAttempt) throw waitForRecorder();
  // Read after the recorder caught up, so it shows this attempt's outcome as projected.
  if (run.attempt > body.attempt) return skipped(`attempt ${body.attempt} was replaced by attempt ${run.attempt}`);
  if (projectedInTable(run) && run.status !== 'succeeded') {
    return skipped(`attempt ${body.attempt} had already ${run.status}`);
  }

  if (run.previous !== 'failed') return skipped('not a recovery: the previous finished run did not fail');
  const em = deps.orm.em.fork();
  const [history] = await em.execute<{ failures: number }[]>(
    `select (select count(*)::int from runs f
              where f.job_id = ?::uuid and f.id <> ?::uuid and f.status = 'failed' and f.finished_at < ?
                and f.finished_at > coalesce((select max(s.finished_at) from runs s
                  where s.job_id = ?::uuid and s.id <> ?::uuid and s.status = 'succeeded' and s.finished_at < ?), '-infinity')
            ) as failures`,
    [run.job_id, run.id, body.at, run.job_id, run.id, body.at],
  );
  warnProblems(deps, run, settings.problems);
  const recipients = await jobRecipients(em, { orgId: run.organization_id, createdBy: run.created_by_id, settings });
  if (recipients.length === 0) return noRecipients(deps, run);

  const mail = renderRunRecovered({
    orgName: run.org_name,
    jobName: run.job_name,
    runId: run.id,
    failuresBefore: history?.failures ?? 0,
    succeededAt: body.at,
    runUrl: runUrl(config.publicUrl, run.id),
  });
  const deliveries: Delivery[] = [];
  for (const recipient of recipients) {
    deliveries.push(
      await deliver(
        deps,
        config,
        {
          key: keys.runRecovered(run.id, recipient),
          kind: 'run-recovered',
          orgId: run.organization_id,
          recipient,
          runId: run.id,
          jobId: run.job_id,
        },
        () => mail,
        { signal: meta.signal, giveUp: meta.isLastAttempt, afterDeliver: meta.afterDeliver },
      ),
    );
  }
  settle(deps, deliveries, config, meta);
  return { action: 'notified', deliveries };
}

function warnProblems(deps: NotifyDeps, run: RunContext, problems: { field: string; reason: string }[]) {
  for (const p of problems) {
    deps.log.warn({ jobId: run.job_id, field: p.field, reason: p.reason }, 'job notification settings: entry ignored');
  }
}

function noRecipients(deps: NotifyDeps, run: RunContext): RunEventOutcome {
  deps.log.warn(
    { jobId: run.job_id, orgId: run.organization_id },
    'no one to notify: the job has no valid recipients, no creator in the organization, and the organization no owner',
  );
  return skipped('no recipients');
}
