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
   * without it, a success is decided once the runs table shows this run's own outcome.
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
  const em = deps.orm.em.fork();
  const run = await loadRun(em, body.runId, body.orgId);
  if (!run) return skipped('unknown run');
  const settings = parseNotifySettings(run.notify);
  if (!settings.onRecovery) return skipped('recovery mail is turned off for the job');

  // Decide once the recorder has projected everything up to this event (the previous run's failure is
  // earlier in the stream), or, without a view of the recorder, at least this run's own outcome.
  const projectedInTable = (r: RunContext) =>
    r.attempt > body.attempt || (r.attempt === body.attempt && TERMINAL.includes(r.status));
  const caughtUp = meta.recorderCaughtUp ? await meta.recorderCaughtUp(meta.streamSeq) : projectedInTable(run);
  if (!caughtUp && !meta.isLastAttempt) {
    throw new RetryableError(`the recorder has not projected run events up to ${meta.streamSeq} yet`, {
      // Growing waits: a recorder that lags by seconds costs a few deliveries, not all of them.
      retryAfterMs: config.projectionWaitMs * Math.max(1, meta.deliveryCount),
      code: 'NOTIFY_WAITING_FOR_RECORDER',
    });
  }
  const current = (await loadRun(em, body.runId, body.orgId)) ?? run;
  if (current.attempt > body.attempt)
    return skipped(`attempt ${body.attempt} was replaced by attempt ${current.attempt}`);
  if (projectedInTable(current) && current.status !== 'succeeded') {
    return skipped(`attempt ${body.attempt} had already ${current.status}`);
  }

  const [history] = await em.execute<{ previous: string | null; failures: number }[]>(
    `select (select p.status from runs p
              where p.job_id = ?::uuid and p.id <> ?::uuid and p.status in ('succeeded', 'failed') and p.finished_at < ?
              order by p.finished_at desc limit 1) as previous,
            (select count(*)::int from runs f
              where f.job_id = ?::uuid and f.id <> ?::uuid and f.status = 'failed' and f.finished_at < ?
                and f.finished_at > coalesce((select max(s.finished_at) from runs s
                  where s.job_id = ?::uuid and s.id <> ?::uuid and s.status = 'succeeded' and s.finished_at < ?), '-infinity')
            ) as failures`,
    [run.job_id, run.id, body.at, run.job_id, run.id, body.at, run.job_id, run.id, body.at],
  );
  if (history?.previous !== 'failed') return skipped('not a recovery: the previous finished run did not fail');
  warnProblems(deps, run, settings.problems);
  const recipients = await jobRecipients(em, { orgId: run.organization_id, createdBy: run.created_by_id, settings });
  if (recipients.length === 0) return noRecipients(deps, run);

  const mail = renderRunRecovered({
    orgName: run.org_name,
    jobName: run.job_name,
    runId: run.id,
    failuresBefore: history.failures,
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
