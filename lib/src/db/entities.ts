import { randomUUID } from 'node:crypto';
import { defineEntity, p } from '@mikro-orm/core';

/**
 * The data model. Every table carries `organization_id` (tenant isolation is enforced twice: every
 * query is scoped by organization in code, and row-level security will sit under it). Ids are UUIDs
 * generated in the application, so a run's id is known before its transaction commits (the outbox row
 * carries it in its msg id).
 */

export const newId = (): string => randomUUID();

/**
 * Row-level security, under the code's own organization scoping (tenant isolation twice). The gateway runs tenant
 * queries as `APP_ROLE` (neither owner nor superuser; created with its grants by the `tenant_rls` migration) with
 * the caller's organization and user in transaction-local settings: `tenantSession` in tenant.ts. Every other role
 * with grants (the owner: migrations and the system service, which works across tenants) passes `service_access`;
 * FORCE makes the policies apply to the owner as well.
 */
export const APP_ROLE = 'ppc_app';
export const SESSION_ORG = 'ppc.organization_id';
export const SESSION_USER = 'ppc.user_id';
const currentOrg = `nullif(current_setting('${SESSION_ORG}', true), '')::uuid`;
const currentUser = `nullif(current_setting('${SESSION_USER}', true), '')::uuid`;
const notAppRole = `current_user <> '${APP_ROLE}'`;

function tenantRls(condition: string) {
  return {
    rowLevelSecurity: 'force' as const,
    policies: [
      { name: 'tenant_isolation', roles: [APP_ROLE], using: condition, check: condition },
      { name: 'service_access', using: notAppRole, check: notAppRole },
    ],
  };
}
const byOrganization = tenantRls(`organization_id = ${currentOrg}`);

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
  // The current organization, and the others the caller belongs to (to switch to them).
  ...tenantRls(
    `id = ${currentOrg} or exists (select 1 from memberships m where m.organization_id = organizations.id and m.user_id = ${currentUser})`,
  ),
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
  ...tenantRls(
    `id = ${currentUser} or exists (select 1 from memberships m where m.user_id = users.id and m.organization_id = ${currentOrg})`,
  ),
  properties: {
    id: id(),
    /** The organization the user signed up in; access to others is through memberships. */
    organization: () => p.manyToOne(Organization),
    email: p.string().length(320).unique(),
    name: p.string().length(200),
    /** PHC string from `hashPassword` (argon2id); null for users who sign in otherwise. */
    passwordHash: p.string().length(300).nullable(),
    /** Failed password attempts since the last success; drives the login lockout (gateway auth). */
    failedLogins: p.integer().default(0),
    /** No password is even checked before this moment (throttling shared by every gateway replica). */
    lockedUntil: p.datetime().nullable(),
    createdAt: createdAt(),
  },
});
export class User extends UserSchema.class {}
UserSchema.setClass(User);

const MembershipSchema = defineEntity({
  name: 'Membership',
  tableName: 'memberships',
  // Every membership of the current organization, and the caller's own in others.
  ...tenantRls(`organization_id = ${currentOrg} or user_id = ${currentUser}`),
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
  ...byOrganization,
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
  ...byOrganization,
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
  ...byOrganization,
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
  ...byOrganization,
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
    // The gateway's `runs` listing: newest first within an organization, keyset-paginated on (queued_at, id).
    {
      name: 'runs_org_queued_idx',
      expression: 'create index "runs_org_queued_idx" on "runs" ("organization_id", "queued_at" desc, "id" desc)',
    },
    // Job statistics: a job's recent successes, and its failures since the last success.
    { name: 'runs_job_status_finished_idx', properties: ['job', 'status', 'finishedAt'] },
  ],
});
export class Run extends RunSchema.class {}
RunSchema.setClass(Run);

const OutboxSchema = defineEntity({
  name: 'OutboxMessage',
  tableName: 'outbox',
  ...byOrganization,
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
  ...byOrganization,
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

const SessionSchema = defineEntity({
  name: 'Session',
  tableName: 'sessions',
  ...byOrganization,
  properties: {
    id: id(),
    /** The organization the session acts in (a user may belong to several). */
    organization: () => p.manyToOne(Organization),
    user: () => p.manyToOne(User),
    /** SHA-256 of the cookie value: a database leak yields no usable session. */
    tokenHash: p.string().length(64).unique(),
    expiresAt: p.datetime(),
    revokedAt: p.datetime().nullable(),
    lastSeenAt: p.datetime().defaultRaw('now()'),
    userAgent: p.string().length(300).nullable(),
    createdAt: createdAt(),
  },
  indexes: [{ properties: ['user'] }, { properties: ['organization'] }],
});
export class Session extends SessionSchema.class {}
SessionSchema.setClass(Session);

export const API_SCOPES = ['read', 'write', 'run', 'admin'] as const;
export type ApiScope = (typeof API_SCOPES)[number];

const ApiTokenSchema = defineEntity({
  name: 'ApiToken',
  tableName: 'api_tokens',
  ...byOrganization,
  properties: {
    id: id(),
    organization: () => p.manyToOne(Organization),
    /** The user who created it; the token acts with that user's role, narrowed by its scopes. */
    user: () => p.manyToOne(User),
    name: p.string().length(200),
    scopes: p.json<ApiScope[]>(),
    /** SHA-256 of the secret; the secret itself is shown once, at creation. */
    tokenHash: p.string().length(64).unique(),
    /** The first characters of the token, so a user can tell tokens apart. */
    prefix: p.string().length(16),
    expiresAt: p.datetime().nullable(),
    revokedAt: p.datetime().nullable(),
    lastUsedAt: p.datetime().nullable(),
    createdAt: createdAt(),
  },
  indexes: [{ properties: ['organization'] }, { properties: ['user'] }],
});
export class ApiToken extends ApiTokenSchema.class {}
ApiTokenSchema.setClass(ApiToken);

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
  SessionSchema,
  ApiTokenSchema,
  FenceSchema,
];
