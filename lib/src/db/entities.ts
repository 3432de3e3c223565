import { randomUUID } from 'node:crypto';
import { defineEntity, p } from '@mikro-orm/core';

/**
 * The data model. Every table carries `organization_id` (tenant isolation is enforced twice: every
 * query is scoped by organization in code, and row-level security will sit under it). Ids are UUIDs
 * generated in the application, so a run's id is known before its transaction commits (the outbox row
 * carries it in its msg id).
 */

export const newId = (): string => randomUUID();

const id = () =>
  p
    .uuid()
    .primary()
    .onCreate(() => randomUUID());
const createdAt = () =>
  p
    .datetime()
    .defaultRaw('now()')
    .onCreate(() => new Date());
const updatedAt = () =>
  p
    .datetime()
    .defaultRaw('now()')
    .onCreate(() => new Date())
    .onUpdate(() => new Date());

export const ROLES = ['owner', 'member', 'viewer'] as const;
export type Role = (typeof ROLES)[number];
export const PLATFORMS = ['demo', 'google-ads'] as const;
export const RUN_KINDS = ['report', 'urlcheck'] as const;
export const TRIGGERS = ['schedule', 'manual', 'replay'] as const;
export const RUN_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

const OrganizationSchema = defineEntity({
  name: 'Organization',
  tableName: 'organizations',
  properties: {
    /** The tenant key itself: every other table references it as `organization_id`. */
    id: id(),
    name: p.string().length(200),
    createdAt: createdAt(),
  },
});
export class Organization extends OrganizationSchema.class {}
OrganizationSchema.setClass(Organization);

const UserSchema = defineEntity({
  name: 'User',
  tableName: 'users',
  properties: {
    id: id(),
    /** The organization the user signed up in; access to others is through memberships. */
    organization: () => p.manyToOne(Organization),
    email: p.string().length(320).unique(),
    name: p.string().length(200),
    /** PHC string from `hashPassword` (argon2id); null for users who sign in otherwise. */
    passwordHash: p.string().length(300).nullable(),
    createdAt: createdAt(),
  },
});
export class User extends UserSchema.class {}
UserSchema.setClass(User);

const MembershipSchema = defineEntity({
  name: 'Membership',
  tableName: 'memberships',
  properties: {
    id: id(),
    organization: () => p.manyToOne(Organization),
    user: () => p.manyToOne(User),
    role: p.enum(ROLES),
    createdAt: createdAt(),
  },
  uniques: [{ properties: ['organization', 'user'] }],
  indexes: [{ properties: ['user'] }],
});
export class Membership extends MembershipSchema.class {}
MembershipSchema.setClass(Membership);

const ConnectionSchema = defineEntity({
  name: 'Connection',
  tableName: 'connections',
  properties: {
    id: id(),
    organization: () => p.manyToOne(Organization),
    /** Who connected it (and is notified when it is revoked). */
    owner: () => p.manyToOne(User).nullable(),
    platform: p.enum(PLATFORMS),
    /** The platform's name for the signed-in identity (e-mail, login customer id). */
    label: p.string().length(300),
    /** `sealSecret` output: never the plaintext refresh token. */
    sealedRefreshToken: p.text(),
    /** The keyring key that sealed it (also inside the sealed form), so rotation can find stale rows. */
    keyId: p.string().length(64),
    status: p.enum(['active', 'revoked', 'error'] as const).default('active'),
    lastError: p.text().nullable(),
    lastErrorAt: p.datetime().nullable(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  indexes: [{ properties: ['organization'] }, { properties: ['keyId'] }],
});
export class Connection extends ConnectionSchema.class {}
ConnectionSchema.setClass(Connection);

const AdAccountSchema = defineEntity({
  name: 'AdAccount',
  tableName: 'ad_accounts',
  properties: {
    id: id(),
    organization: () => p.manyToOne(Organization),
    connection: () => p.manyToOne(Connection),
    platform: p.enum(PLATFORMS),
    /** The platform's own account id (Google Ads customer id). */
    platformAccountId: p.string().length(100),
    /** The manager account access goes through (`login-customer-id`); null for direct access. */
    loginCustomerId: p.string().length(20).nullable(),
    name: p.string().length(300),
    currency: p.string().length(3),
    timeZone: p.string().length(64),
    status: p.enum(['enabled', 'disabled', 'removed'] as const).default('enabled'),
    lastSyncedAt: p.datetime().nullable(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  uniques: [{ properties: ['connection', 'platformAccountId'] }],
  indexes: [{ properties: ['organization'] }],
});
export class AdAccount extends AdAccountSchema.class {}
AdAccountSchema.setClass(AdAccount);

const JobSchema = defineEntity({
  name: 'Job',
  tableName: 'jobs',
  properties: {
    id: id(),
    organization: () => p.manyToOne(Organization),
    account: () => p.manyToOne(AdAccount),
    createdBy: () => p.manyToOne(User).nullable(),
    name: p.string().length(200),
    kind: p.enum(RUN_KINDS).default('report'),
    /** Report type id (`reportType` in `report.task.v1`); null for URL checks. */
    reportType: p.string().length(128).nullable(),
    /** Validated against the report type's parameter schema before it is stored. */
    params: p.json<Record<string, unknown>>(),
    /** `OutputTarget` from proto. */
    output: p.json<Record<string, unknown>>(),
    /** Five-field cron, evaluated in `timeZone`; null = run on demand only. */
    cron: p.string().length(100).nullable(),
    timeZone: p.string().length(64).default('UTC'),
    enabled: p.boolean().default(true),
    nextRunAt: p.datetime().nullable(),
    /** `{ onFailure, onRecovery, recipients }` and similar; read by the notifier. */
    notify: p.json<Record<string, unknown>>(),
    disabledReason: p.text().nullable(),
    /** Statistics the run recorder recomputes on every terminal run event (read by the autoscaler and the UI). */
    lastSuccessAt: p.datetime().nullable(),
    /** Mean wall time (started → finished) of the job's most recent successful runs. */
    meanDurationMs: p.integer().nullable(),
    /** Failed runs finished since the last success (cancelled runs count neither way). */
    consecutiveFailures: p.integer().default(0),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  indexes: [
    // enqueue-due-jobs: `where enabled and next_run_at <= now() order by next_run_at for update skip locked`
    { name: 'jobs_due_idx', properties: ['nextRunAt'], where: 'enabled' },
    { properties: ['organization'] },
    { properties: ['account'] },
  ],
});
export class Job extends JobSchema.class {}
JobSchema.setClass(Job);

const RunSchema = defineEntity({
  name: 'Run',
  tableName: 'runs',
  properties: {
    id: id(),
    organization: () => p.manyToOne(Organization),
    job: () => p.manyToOne(Job),
    trigger: p.enum(TRIGGERS),
    /** The schedule slot a `schedule` run was enqueued for: unique per job, so a slot is enqueued once. */
    scheduledFor: p.datetime().nullable(),
    status: p.enum(RUN_STATUSES).default('queued'),
    attempt: p.integer().default(1),
    progress: p.double().default(0),
    phase: p.string().length(32).nullable(),
    /** Per-phase durations in ms (`{ fetching, processing, writing, total }`). */
    timings: p.json<Record<string, number>>().nullable(),
    workerInstance: p.string().length(200).nullable(),
    outputLinks: p.json<{ kind: string; name: string; url: string }[]>().nullable(),
    rowCounts: p.json<Record<string, number>>().nullable(),
    errorCode: p.string().length(100).nullable(),
    errorMessage: p.text().nullable(),
    /**
     * Stream sequence of the event that fixed the run's state: the first terminal event of the attempt once
     * it has one, else the newest event projected for the attempt (see services/system/src/recorder.ts).
     */
    lastEventSeq: p.bigint('number').default(0),
    /** Lease revision of the clock leader whose tick enqueued a `schedule` run (see `fences`). */
    fencingToken: p.bigint('number').nullable(),
    queuedAt: createdAt(),
    startedAt: p.datetime().nullable(),
    finishedAt: p.datetime().nullable(),
  },
  uniques: [{ name: 'runs_job_slot_unique', properties: ['job', 'scheduledFor'] }],
  indexes: [
    { name: 'runs_job_idx', properties: ['job', 'queuedAt'] },
    { name: 'runs_org_status_idx', properties: ['organization', 'status'] },
    // Job statistics: a job's recent successes, and its failures since the last success.
    { name: 'runs_job_status_finished_idx', properties: ['job', 'status', 'finishedAt'] },
  ],
});
export class Run extends RunSchema.class {}
RunSchema.setClass(Run);

const OutboxSchema = defineEntity({
  name: 'OutboxMessage',
  tableName: 'outbox',
  properties: {
    /** Insertion order: the relay publishes oldest first. */
    id: p.bigint('number').primary().autoincrement(),
    organization: () => p.manyToOne(Organization),
    run: () => p.manyToOne(Run).nullable(),
    /** `Ppc-Type` (e.g. `report.task.v1`). */
    type: p.string().length(100),
    subject: p.string().length(300),
    /** `Nats-Msg-Id`: the stream's duplicate window drops a republish. */
    msgId: p.string().length(300).unique(),
    body: p.json<Record<string, unknown>>(),
    traceparent: p.string().length(100).nullable(),
    createdAt: createdAt(),
    sentAt: p.datetime().nullable(),
    attempts: p.integer().default(0),
    lastError: p.text().nullable(),
  },
  indexes: [{ name: 'outbox_unsent_idx', properties: ['id'], where: 'sent_at is null' }],
});
export class OutboxMessage extends OutboxSchema.class {}
OutboxSchema.setClass(OutboxMessage);

const NotificationLogSchema = defineEntity({
  name: 'NotificationLog',
  tableName: 'notification_log',
  properties: {
    id: id(),
    organization: () => p.manyToOne(Organization),
    /** e.g. `run-failed.<runId>`, `digest.<userId>.<date>`: a redelivered event sends nothing twice. */
    dedupeKey: p.string().length(300).unique(),
    kind: p.string().length(50),
    recipient: p.string().length(320),
    run: () => p.manyToOne(Run).nullable(),
    job: () => p.manyToOne(Job).nullable(),
    status: p.enum(['pending', 'sent', 'failed'] as const).default('pending'),
    error: p.text().nullable(),
    createdAt: createdAt(),
    sentAt: p.datetime().nullable(),
  },
  indexes: [{ properties: ['organization', 'createdAt'] }],
});
export class NotificationLog extends NotificationLogSchema.class {}
NotificationLogSchema.setClass(NotificationLog);

const FenceSchema = defineEntity({
  name: 'Fence',
  tableName: 'fences',
  properties: {
    /** What is fenced: `clock` for the clock leader's ticks. */
    name: p.string().length(100).primary(),
    /** The highest fencing token whose effects were admitted; effects carrying a lower one are refused. */
    token: p.bigint('number'),
    /** Last time a holder of `token` confirmed it: a fence left unconfirmed for long may be reset (see due-jobs). */
    updatedAt: p.datetime().defaultRaw('now()'),
  },
});
/** Fences are the mesh's, not a tenant's: the one table without an organization. */
export class Fence extends FenceSchema.class {}
FenceSchema.setClass(Fence);

export const entities = [
  OrganizationSchema,
  UserSchema,
  MembershipSchema,
  ConnectionSchema,
  AdAccountSchema,
  JobSchema,
  RunSchema,
  OutboxSchema,
  NotificationLogSchema,
  FenceSchema,
];
