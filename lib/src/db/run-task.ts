/**
 * A run's task message, built the same way wherever a run is enqueued: by system's `enqueue-due-jobs` (scheduled
 * runs) and by the gateway's `runJob`/`retryRun` (manual and replayed runs). Both insert the run and stage the task
 * with `addToOutbox` in one transaction; this module only decides what the task says and when a job fires next.
 */
import { type BodyOf, type MessageDef, ReportTaskMsg, UrlCheckTaskMsg } from '@ppc/proto';
import { Cron } from 'croner';

/** What a task is built from: the job's stored fields, its account's connection, and the run being enqueued. */
export interface RunTaskSource {
  runId: string;
  jobId: string;
  orgId: string;
  accountId: string;
  /** The account's connection (null when the account row is gone: the task then fails validation). */
  connectionId: string | null;
  /** The account's platform. */
  platform: string | null;
  kind: 'report' | 'urlcheck';
  /** The report type id; null for URL checks. */
  reportType: string | null;
  /** Report parameters, or the URL check's options. */
  params: Record<string, unknown>;
  /** `OutputTarget` as stored on the job. */
  output: Record<string, unknown>;
  /** Region whose workers take the task. */
  region: string;
  trigger: 'schedule' | 'manual' | 'replay';
  /** Default 1; a later attempt gets its own msg id (`run.<runId>.<attempt>`). */
  attempt?: number;
  /** ISO-8601. */
  enqueuedAt: string;
}

/** The message type and its validated body, ready for `addToOutbox`. */
export type RunTask =
  | { def: typeof ReportTaskMsg; body: BodyOf<typeof ReportTaskMsg> }
  | { def: typeof UrlCheckTaskMsg; body: BodyOf<typeof UrlCheckTaskMsg> };

/** The job's task message for a run, validated; throws MessageValidationError naming the bad field. */
export function buildRunTask(src: RunTaskSource): RunTask {
  const base = {
    runId: src.runId,
    jobId: src.jobId,
    orgId: src.orgId,
    accountId: src.accountId,
    connectionId: src.connectionId ?? '',
    platform: src.platform as 'demo' | 'google-ads',
    region: src.region,
    attempt: src.attempt ?? 1,
    trigger: src.trigger,
    enqueuedAt: src.enqueuedAt,
    output: src.output as BodyOf<typeof ReportTaskMsg>['output'],
  };
  if (src.kind === 'urlcheck') {
    const body = { ...base, options: src.params } as BodyOf<typeof UrlCheckTaskMsg>;
    const def: MessageDef = UrlCheckTaskMsg;
    def.assert(body);
    return { def: UrlCheckTaskMsg, body };
  }
  const body = { ...base, reportType: src.reportType ?? '', params: src.params } as BodyOf<typeof ReportTaskMsg>;
  const def: MessageDef = ReportTaskMsg;
  def.assert(body);
  return { def: ReportTaskMsg, body };
}

/** The state of a job's account and connection (null: the row does not exist). */
export interface RunTargetState {
  accountId: string;
  accountStatus: string | null;
  connectionId: string | null;
  connectionStatus: string | null;
}

/** Why a job can no longer run (its account or connection is gone or revoked), or null when it can. */
export function cannotRunReason(s: RunTargetState): string | null {
  if (s.accountStatus === null) return `ad account ${s.accountId} no longer exists`;
  if (s.accountStatus === 'removed') return `ad account ${s.accountId} was removed`;
  if (s.connectionStatus === null) return `connection ${s.connectionId} no longer exists`;
  if (s.connectionStatus === 'revoked') return `connection ${s.connectionId} was revoked; reconnect it`;
  return null;
}

const cronCache = new Map<string, Cron>();

/** The job's cron in its zone (cached); throws on an invalid expression or zone. */
function cronOf(expr: string, timeZone: string): Cron {
  const key = `${timeZone}\u0000${expr}`;
  let cron = cronCache.get(key);
  if (!cron) {
    cron = new Cron(expr, { timezone: timeZone });
    if (cronCache.size > 10_000) cronCache.clear();
    cronCache.set(key, cron);
  }
  return cron;
}

/**
 * The first fire time of `cron` (in `timeZone`) strictly after `after`; null when it never fires again.
 * Throws for an invalid expression or time zone.
 */
export function nextFireAfter(cron: string, timeZone: string, after: Date): Date | null {
  return cronOf(cron, timeZone).nextRun(after);
}
