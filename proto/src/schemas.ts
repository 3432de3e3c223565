import { type Static, Type } from '@sinclair/typebox';
import { TOKEN_PATTERN } from './tokens.ts';
import { runEventKinds } from './subjects.ts';

/** Ids travel inside subjects, so they are single subject tokens. */
export const Id = Type.String({ pattern: TOKEN_PATTERN, description: 'identifier, one subject token' });
export const Timestamp = Type.String({
  pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,9})?(Z|[+-]\\d{2}:\\d{2})$',
  description: 'ISO-8601 date-time',
});
export const Platform = Type.Union([Type.Literal('demo'), Type.Literal('google-ads')]);
export const Trigger = Type.Union([Type.Literal('schedule'), Type.Literal('manual'), Type.Literal('replay')]);
export const RunKind = Type.Union([Type.Literal('report'), Type.Literal('urlcheck')]);

export const OutputTarget = Type.Union([
  Type.Object(
    {
      kind: Type.Literal('sheets'),
      spreadsheetId: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
      folderId: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    },
    { additionalProperties: false },
  ),
  Type.Object({ kind: Type.Literal('xlsx') }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('csv') }, { additionalProperties: false }),
]);
export type OutputTarget = Static<typeof OutputTarget>;

const runTaskFields = {
  runId: Id,
  jobId: Id,
  orgId: Id,
  accountId: Id,
  connectionId: Id,
  platform: Platform,
  region: Id,
  attempt: Type.Integer({ minimum: 1, maximum: 100 }),
  trigger: Trigger,
  enqueuedAt: Timestamp,
  output: OutputTarget,
};

/** `report.task.v1` on `tasks.report.<region>.<reportType>`; idempotency key `run.<runId>`; acked after `succeeded`/`failed`. */
export const ReportTask = Type.Object(
  {
    ...runTaskFields,
    reportType: Id,
    /** Validated against the report type's own parameter schema by the worker. */
    params: Type.Record(Type.String(), Type.Unknown()),
  },
  { additionalProperties: false },
);
export type ReportTask = Static<typeof ReportTask>;

/** `urlcheck.task.v1` on `tasks.urlcheck.<region>`; idempotency key `run.<runId>`. */
export const UrlCheckTask = Type.Object(
  {
    ...runTaskFields,
    options: Type.Object(
      {
        maxUrls: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
        perHostConcurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
        timeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 120_000 })),
        maxRedirects: Type.Optional(Type.Integer({ minimum: 0, maximum: 20 })),
        softErrorPhrases: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 100 })),
        valueTrack: Type.Optional(Type.Union([Type.Literal('strip'), Type.Literal('resolve')])),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
export type UrlCheckTask = Static<typeof UrlCheckTask>;

/**
 * A clock tick: what the clock leader fires into `tasks.system.<name>` and `tasks.cluster.<name>`.
 * Idempotency key `tick.<schedule>.<scheduledAt>`; `fencingToken` is the lease revision of the leader
 * that fired it, so effects can refuse a deposed leader's tick.
 */
export const ClockTick = Type.Object(
  {
    schedule: Id,
    scheduledAt: Timestamp,
    firedAt: Timestamp,
    fencingToken: Type.Integer({ minimum: 1 }),
    leader: Type.String({ minLength: 1, maxLength: 200 }),
    payload: Type.Record(Type.String(), Type.Unknown()),
  },
  { additionalProperties: false },
);
export type ClockTick = Static<typeof ClockTick>;

const runEventBase = {
  runId: Id,
  orgId: Id,
  attempt: Type.Integer({ minimum: 1, maximum: 100 }),
  at: Timestamp,
};

export const RunQueued = Type.Object(
  { ...runEventBase, jobId: Id, kind: RunKind, trigger: Trigger, reportType: Type.Optional(Id) },
  { additionalProperties: false },
);
export const RunStarted = Type.Object(
  { ...runEventBase, worker: Type.String({ minLength: 1, maxLength: 200 }), region: Id },
  { additionalProperties: false },
);
export const RunPhase = Type.Union([Type.Literal('fetching'), Type.Literal('processing'), Type.Literal('writing')]);
export const RunProgress = Type.Object(
  {
    ...runEventBase,
    phase: RunPhase,
    percent: Type.Number({ minimum: 0, maximum: 100 }),
    rows: Type.Integer({ minimum: 0 }),
    sheet: Type.Optional(
      Type.Object(
        {
          index: Type.Integer({ minimum: 1 }),
          count: Type.Integer({ minimum: 1 }),
          name: Type.String({ maxLength: 200 }),
        },
        { additionalProperties: false },
      ),
    ),
    message: Type.Optional(Type.String({ maxLength: 500 })),
  },
  { additionalProperties: false },
);
export const RunOutput = Type.Object(
  {
    kind: Type.Union([Type.Literal('sheets'), Type.Literal('xlsx'), Type.Literal('csv')]),
    name: Type.String({ minLength: 1, maxLength: 300 }),
    url: Type.String({ minLength: 1, maxLength: 2000 }),
  },
  { additionalProperties: false },
);
export const RunSucceeded = Type.Object(
  {
    ...runEventBase,
    outputs: Type.Array(RunOutput, { maxItems: 50 }),
    rows: Type.Record(Type.String(), Type.Integer({ minimum: 0 })),
    timings: Type.Record(Type.String(), Type.Number({ minimum: 0 })),
  },
  { additionalProperties: false },
);
export const RunFailed = Type.Object(
  {
    ...runEventBase,
    code: Type.String({ minLength: 1, maxLength: 100 }),
    message: Type.String({ maxLength: 2000 }),
    retryable: Type.Boolean(),
  },
  { additionalProperties: false },
);
export const RunCancelled = Type.Object(
  { ...runEventBase, reason: Type.String({ maxLength: 500 }) },
  { additionalProperties: false },
);
export type RunOutput = Static<typeof RunOutput>;
export type RunQueued = Static<typeof RunQueued>;
export type RunStarted = Static<typeof RunStarted>;
export type RunProgress = Static<typeof RunProgress>;
export type RunSucceeded = Static<typeof RunSucceeded>;
export type RunFailed = Static<typeof RunFailed>;
export type RunCancelled = Static<typeof RunCancelled>;

/** `scale.decision.v1` on `events.scale.<pool>`: every autoscaler decision with its inputs. */
export const ScaleDecision = Type.Object(
  {
    pool: Type.String({ minLength: 1, maxLength: 200 }),
    at: Timestamp,
    backlog: Type.Integer({ minimum: 0 }),
    live: Type.Integer({ minimum: 0 }),
    starting: Type.Integer({ minimum: 0 }),
    meanTaskMs: Type.Number({ minimum: 0 }),
    targetDrainMs: Type.Number({ minimum: 0 }),
    min: Type.Integer({ minimum: 0 }),
    max: Type.Integer({ minimum: 0 }),
    wanted: Type.Integer({ minimum: 0 }),
    started: Type.Integer({ minimum: 0 }),
    backend: Type.String({ maxLength: 50 }),
    reason: Type.String({ maxLength: 500 }),
  },
  { additionalProperties: false },
);
export type ScaleDecision = Static<typeof ScaleDecision>;

/**
 * The value of `task-stats` KV key `<pool>.<taskType>` (e.g. `report-worker-eu-west.search-terms`,
 * `url-checker-eu-west.urlcheck`): how long one task type has recently taken in one worker pool.
 * Written by system's run recorder when a run finishes (compare-and-swap, so replicas never lose a
 * sample); read by the autoscaler. `meanMs` is an exponentially weighted mean of task wall times;
 * `weight` is the number of recent samples, decayed by half every hour, as of `updatedAt`.
 */
export const TaskStat = Type.Object(
  {
    pool: Id,
    taskType: Id,
    meanMs: Type.Number({ minimum: 0 }),
    weight: Type.Number({ minimum: 0 }),
    samples: Type.Integer({ minimum: 0 }),
    updatedAt: Timestamp,
  },
  { additionalProperties: false },
);
export type TaskStat = Static<typeof TaskStat>;

/** `worker.heartbeat.v1`, the value of `workers` KV key `<service>.<instanceId>`. */
export const WorkerHeartbeat = Type.Object(
  {
    service: Id,
    instanceId: Id,
    region: Id,
    version: Type.String({ maxLength: 50 }),
    startedAt: Timestamp,
    at: Timestamp,
    inFlight: Type.Integer({ minimum: 0 }),
    ready: Type.Boolean(),
    pid: Type.Integer({ minimum: 0 }),
    host: Type.String({ maxLength: 255 }),
    details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  { additionalProperties: false },
);
export type WorkerHeartbeat = Static<typeof WorkerHeartbeat>;

/** `run.cancel.v1` on core subject `cmd.run.<runId>.cancel`. */
export const RunCancel = Type.Object(
  {
    runId: Id,
    orgId: Id,
    reason: Type.String({ maxLength: 500 }),
    requestedBy: Type.String({ maxLength: 200 }),
    at: Timestamp,
  },
  { additionalProperties: false },
);
export type RunCancel = Static<typeof RunCancel>;

/** `credentials.request.v1` on `svc.credentials.token` (core request-reply, never stored). */
export const CredentialRequest = Type.Object(
  {
    runId: Id,
    accountId: Id,
    connectionId: Id,
    platform: Platform,
    /** The platform refused the last token (HTTP 401): refresh instead of answering from the cache. */
    force: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type CredentialRequest = Static<typeof CredentialRequest>;

export const CredentialReply = Type.Union([
  Type.Object(
    {
      ok: Type.Literal(true),
      platform: Platform,
      accessToken: Type.String({ minLength: 1, maxLength: 4096 }),
      expiresAt: Timestamp,
      apiBaseUrl: Type.Optional(Type.String({ maxLength: 2000 })),
      developerToken: Type.Optional(Type.String({ maxLength: 200 })),
      loginCustomerId: Type.Optional(Type.String({ maxLength: 50 })),
      /** The platform's own id of the run's account (the task carries only ours). */
      platformAccountId: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
      /** The account's IANA time zone (its report days) and ISO 4217 currency (its money columns). */
      accountTimeZone: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
      accountCurrency: Type.Optional(Type.String({ minLength: 3, maxLength: 3 })),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      ok: Type.Literal(false),
      code: Type.String({ minLength: 1, maxLength: 100 }),
      message: Type.String({ maxLength: 2000 }),
      retryable: Type.Boolean(),
      retryAfterMs: Type.Optional(Type.Integer({ minimum: 0 })),
    },
    { additionalProperties: false },
  ),
]);
export type CredentialReply = Static<typeof CredentialReply>;

/** `clock.leader.v1` on `events.clock.leader`, on every change of leader. */
export const ClockLeader = Type.Object(
  {
    leader: Type.Union([Type.String({ minLength: 1, maxLength: 200 }), Type.Null()]),
    previous: Type.Union([Type.String({ maxLength: 200 }), Type.Null()]),
    fencingToken: Type.Integer({ minimum: 0 }),
    at: Timestamp,
  },
  { additionalProperties: false },
);
export type ClockLeader = Static<typeof ClockLeader>;

export const RunEventKindSchema = Type.Union(runEventKinds.map((k) => Type.Literal(k)));
