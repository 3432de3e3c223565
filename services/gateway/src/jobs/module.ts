import { wrap } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { AdAccount, Job } from '@ppc/lib/db';
import { objectName } from '@ppc/lib/outputs';
import { requireCaller, tenantOf } from '../context.ts';
import { BadUserInputError, ConflictError, NotFoundError } from '../graphql/errors.ts';
import type { Context, GraphQLModule } from '../graphql/module.ts';
import type { JobKind } from './catalog.ts';
import { sqlOf } from '../db/fast-sql.ts';
import { loadRunView } from '../runs/queries.ts';
import { enqueueRun } from './enqueue.ts';
import { afterCursor, isUuid, type Page, pageSize, toPage } from './pagination.ts';
import { type JobFields, nextRunFor, type ValidJobFields, validateJobFields } from './validate.ts';

const typeDefs = /* GraphQL */ `
  """
  A report or URL check on one ad account, run on a schedule (cron in timeZone) and on demand. A job the system
  cannot run any more (account removed, connection revoked) is disabled with disabledReason.
  """
  type Job {
    id: ID!
    name: String!
    kind: JobKind!
    "The report type id (see reportTypes); null for a URL check."
    reportType: String
    account: Account!
    "Parameters as saved (defaults are applied when a run starts); see the report type's paramsSchema."
    params: JSON!
    "Where results go: {kind: sheets, spreadsheetId?, folderId?} | {kind: xlsx} | {kind: csv}."
    output: JSON!
    "Five-field cron (minute hour day-of-month month day-of-week) in timeZone; null: on demand only."
    cron: String
    "IANA time zone the cron is read in."
    timeZone: String!
    enabled: Boolean!
    "The next scheduled run (null: disabled or on demand only)."
    nextRunAt: DateTime
    "{onFailure: Boolean = true, onRecovery: Boolean = true, recipients: [e-mail] (default: the job's creator)}"
    notify: JSON!
    disabledReason: String
    lastSuccessAt: DateTime
    meanDurationMs: Int
    consecutiveFailures: Int!
    createdAt: DateTime!
    updatedAt: DateTime!
  }

  "A page of jobs, by name: pass nextCursor as after for the next page (null: this is the last)."
  type JobPage {
    items: [Job!]!
    nextCursor: String
  }

  input JobFilter {
    accountId: ID
    enabled: Boolean
    kind: JobKind
  }

  input CreateJobInput {
    "1-200 characters."
    name: String!
    kind: JobKind = report
    "Required for a report (an id from reportTypes); left out for a URL check."
    reportType: String
    "An ad account of your organization."
    accountId: ID!
    "Validated against the report type's paramsSchema (the URL check's options for kind urlcheck); left out: {}."
    params: JSON
    output: JSON!
    "Five fields; null or left out: on demand only."
    cron: String
    timeZone: String = "UTC"
    enabled: Boolean = true
    "{ onFailure, onRecovery, recipients }; left out: {}."
    notify: JSON
  }

  "Fields left out keep their value; cron: null makes the job on demand only."
  input UpdateJobInput {
    name: String
    kind: JobKind
    reportType: String
    accountId: ID
    params: JSON
    output: JSON
    cron: String
    timeZone: String
    notify: JSON
  }

  extend type Query {
    "Your organization's jobs by name; first: 1-200 (default 50)."
    jobs(filter: JobFilter, first: Int = 50, after: String): JobPage!
    "NOT_FOUND for an id that is not one of your organization's jobs."
    job(id: ID!): Job
  }

  extend type Mutation {
    createJob(input: CreateJobInput!): Job!
    updateJob(id: ID!, input: UpdateJobInput!): Job!
    "Deletes the job with its runs and their records. CONFLICT while a run is queued or running (cancel it first)."
    deleteJob(id: ID!): ID!
    "Re-enabling clears disabledReason and schedules the next run from now."
    setJobEnabled(id: ID!, enabled: Boolean!): Job!
    """
    Queues a run now (trigger manual) and publishes its task at once; the Run type is the runs module's. CONFLICT
    when the job is disabled or its account or connection is gone.
    """
    runJob(id: ID!): Run!
  }
`;

interface CreateJobArgs {
  input: Omit<JobFields, 'kind' | 'timeZone' | 'reportType' | 'cron'> & {
    kind?: JobKind | null;
    reportType?: string | null;
    accountId: string;
    cron?: string | null;
    timeZone?: string | null;
    enabled?: boolean | null;
  };
}

interface UpdateJobArgs {
  id: string;
  input: Partial<{
    name: string | null;
    kind: JobKind | null;
    reportType: string | null;
    accountId: string | null;
    params: unknown;
    output: unknown;
    cron: string | null;
    timeZone: string | null;
    notify: unknown;
  }>;
}

/** A job of the caller's organization, or NOT_FOUND (also for another organization's id). */
async function loadJob(em: EntityManager, orgId: string, id: string): Promise<Job> {
  const job = isUuid(id) ? await em.findOne(Job, { id, organization: orgId }, { populate: ['account'] }) : null;
  if (!job) throw new NotFoundError('job', id);
  return job;
}

/** The account a job is saved with: the caller's organization's, usable now. */
async function usableAccount(em: EntityManager, orgId: string, id: string, output: Record<string, unknown>) {
  const account = isUuid(id)
    ? await em.findOne(AdAccount, { id, organization: orgId }, { populate: ['connection'] })
    : null;
  if (!account) throw new NotFoundError('ad account', id);
  if (account.status === 'removed') {
    throw new BadUserInputError('input.accountId', 'this ad account was removed from its connection');
  }
  if (account.connection.status === 'revoked') {
    throw new BadUserInputError('input.accountId', "this ad account's connection was revoked; reconnect it first");
  }
  if (output.kind === 'sheets' && account.platform !== 'google-ads') {
    throw new BadUserInputError(
      'input.output.kind',
      'a Google Sheets output needs a Google Ads account; choose xlsx or csv for demo accounts',
    );
  }
  return account;
}

function applyFields(job: Job, v: ValidJobFields): void {
  job.name = v.name;
  job.kind = v.kind;
  job.reportType = v.reportType;
  job.params = v.params;
  job.output = v.output;
  job.cron = v.cron;
  job.timeZone = v.timeZone;
  job.notify = v.notify;
}

const has = <T extends object>(o: T, key: keyof T) => Object.hasOwn(o, key) && o[key] !== undefined;

/** Deletes the job's runs' files from the object store after the rows are gone; best effort (logged). */
async function deleteArtifacts(ctx: Context, runs: { id: string; output_links: { url: string }[] | null }[]) {
  for (const run of runs) {
    for (const link of run.output_links ?? []) {
      const prefix = `/artifacts/${encodeURIComponent(run.id)}/`;
      if (!link.url?.startsWith(prefix)) continue;
      const name = objectName(run.id, decodeURIComponent(link.url.slice(prefix.length)));
      await ctx.deps.artifacts.delete(name).catch((err: Error) => {
        ctx.deps.log.warn({ err: err.message, runId: run.id, name }, 'could not delete an artifact of a deleted job');
      });
    }
  }
}

export const jobsModule: GraphQLModule = {
  typeDefs,
  resolvers: {
    Job: {
      account: async (job: Job, _args: unknown, ctx: Context) => {
        if (wrap(job.account).isInitialized()) return job.account;
        const caller = requireCaller(ctx, 'read');
        return tenantOf(ctx, 'read').findOneOrFail(AdAccount, {
          id: job.account.id,
          organization: caller.organizationId,
        });
      },
    },
    Query: {
      jobs: async (
        _root: unknown,
        args: {
          filter?: { accountId?: string | null; enabled?: boolean | null; kind?: JobKind | null } | null;
          first?: number | null;
          after?: string | null;
        },
        ctx: Context,
      ): Promise<Page<Job>> => {
        const caller = requireCaller(ctx, 'read');
        const em = tenantOf(ctx, 'read');
        const size = pageSize(args.first);
        const where: Record<string, unknown> = { organization: caller.organizationId, ...afterCursor(args.after) };
        const f = args.filter ?? {};
        if (f.accountId) {
          const known =
            isUuid(f.accountId) &&
            (await em.count(AdAccount, { id: f.accountId, organization: caller.organizationId }));
          if (!known) throw new NotFoundError('ad account', f.accountId);
          where.account = f.accountId;
        }
        if (f.enabled !== undefined && f.enabled !== null) where.enabled = f.enabled;
        if (f.kind) where.kind = f.kind;
        const rows = await em.find(Job, where, {
          orderBy: { name: 'asc', id: 'asc' },
          limit: size + 1,
          populate: ['account'],
        });
        return toPage(rows, size);
      },
      job: (_root: unknown, args: { id: string }, ctx: Context) =>
        loadJob(tenantOf(ctx, 'read'), requireCaller(ctx, 'read').organizationId, args.id),
    },
    Mutation: {
      createJob: async (_root: unknown, { input }: CreateJobArgs, ctx: Context) => {
        const caller = requireCaller(ctx, 'write');
        const em = tenantOf(ctx, 'write');
        const v = validateJobFields({
          name: input.name,
          kind: input.kind ?? 'report',
          reportType: input.reportType ?? null,
          params: input.params,
          output: input.output,
          cron: input.cron ?? null,
          timeZone: input.timeZone ?? 'UTC',
          notify: input.notify,
        });
        const account = await usableAccount(em, caller.organizationId, input.accountId, v.output);
        const enabled = input.enabled ?? true;
        const job = em.create(Job, {
          organization: caller.organizationId,
          account,
          createdBy: caller.userId,
          ...v,
          enabled,
          nextRunAt: enabled ? nextRunFor(v) : null,
        });
        await em.flush();
        return job;
      },
      updateJob: async (_root: unknown, { id, input }: UpdateJobArgs, ctx: Context) => {
        const caller = requireCaller(ctx, 'write');
        const em = tenantOf(ctx, 'write');
        const job = await loadJob(em, caller.organizationId, id);
        for (const key of ['name', 'kind', 'accountId', 'params', 'output', 'timeZone'] as const) {
          if (Object.hasOwn(input, key) && input[key] === null) {
            throw new BadUserInputError(`input.${key}`, 'cannot be null; leave it out to keep the current value');
          }
        }
        const kind = input.kind ?? job.kind;
        const merged: JobFields = {
          name: input.name ?? job.name,
          kind,
          // Switching to a URL check drops the report type unless one is given (and refused).
          reportType: has(input, 'reportType')
            ? (input.reportType ?? null)
            : kind === 'urlcheck'
              ? null
              : job.reportType,
          params: input.params ?? job.params,
          output: input.output ?? job.output,
          cron: Object.hasOwn(input, 'cron') ? (input.cron ?? null) : job.cron,
          timeZone: input.timeZone ?? job.timeZone,
          notify: Object.hasOwn(input, 'notify') ? input.notify : job.notify,
        };
        const v = validateJobFields(merged);
        const accountId = input.accountId ?? job.account.id;
        const account =
          accountId !== job.account.id || has(input, 'output')
            ? await usableAccount(em, caller.organizationId, accountId, v.output)
            : job.account;
        const scheduleChanged = v.cron !== job.cron || v.timeZone !== job.timeZone;
        applyFields(job, v);
        job.account = account;
        // An unchanged schedule keeps its slot: editing a name must not skip or repeat a run.
        if (scheduleChanged) job.nextRunAt = job.enabled ? nextRunFor(v) : null;
        await em.flush();
        return job;
      },
      deleteJob: async (_root: unknown, { id }: { id: string }, ctx: Context) => {
        const caller = requireCaller(ctx, 'write');
        const em = tenantOf(ctx, 'write');
        if (!isUuid(id)) throw new NotFoundError('job', id);
        const runs = await em.transactional(async (tx) => {
          // The lock enqueueRun takes: no run can be added between the check and the delete.
          const [locked] = await tx.execute<{ id: string }[]>(
            'select id from jobs where id = ? and organization_id = ? for update',
            [id, caller.organizationId],
          );
          if (!locked) throw new NotFoundError('job', id);
          const [active] = await tx.execute<{ n: number }[]>(
            `select count(*)::int as n from runs where job_id = ? and organization_id = ? and status in ('queued', 'running')`,
            [id, caller.organizationId],
          );
          if (active && active.n > 0) {
            throw new ConflictError(
              `job ${id} has ${active.n} queued or running run(s); cancel them or wait for them to finish`,
            );
          }
          const args = [id, caller.organizationId];
          const ofJob = 'select id from runs where job_id = ? and organization_id = ?';
          await tx.execute(
            `delete from notification_log where organization_id = ? and (job_id = ? or run_id in (${ofJob}))`,
            [caller.organizationId, id, ...args],
          );
          await tx.execute(`delete from outbox where organization_id = ? and run_id in (${ofJob})`, [
            caller.organizationId,
            ...args,
          ]);
          const deleted = await tx.execute<{ id: string; output_links: { url: string }[] | null }[]>(
            'delete from runs where job_id = ? and organization_id = ? returning id, output_links',
            args,
          );
          await tx.execute('delete from jobs where id = ? and organization_id = ?', args);
          return deleted;
        });
        await deleteArtifacts(ctx, runs);
        return id;
      },
      setJobEnabled: async (_root: unknown, args: { id: string; enabled: boolean }, ctx: Context) => {
        const caller = requireCaller(ctx, 'write');
        const em = tenantOf(ctx, 'write');
        const job = await loadJob(em, caller.organizationId, args.id);
        if (args.enabled === job.enabled) return job;
        if (args.enabled) {
          const account = await em.findOneOrFail(
            AdAccount,
            { id: job.account.id, organization: caller.organizationId },
            { populate: ['connection'] },
          );
          if (account.status === 'removed' || account.connection.status === 'revoked') {
            throw new ConflictError(
              `job ${job.id} cannot be enabled: its ${account.status === 'removed' ? 'ad account was removed' : 'connection was revoked; reconnect it'}`,
            );
          }
          job.enabled = true;
          job.disabledReason = null;
          job.nextRunAt = nextRunFor(job);
        } else {
          job.enabled = false;
          job.disabledReason = null;
          job.nextRunAt = null;
        }
        await em.flush();
        return job;
      },
      runJob: async (_root: unknown, { id }: { id: string }, ctx: Context) => {
        const caller = requireCaller(ctx, 'run');
        const em = tenantOf(ctx, 'run');
        const job = await loadJob(em, caller.organizationId, id);
        const run = await enqueueRun(em, job, { trigger: 'manual', region: ctx.deps.config.region });
        ctx.deps.relay.kick();
        return loadRunView(sqlOf(em), caller.organizationId, run.id);
      },
    },
  },
} as GraphQLModule;
