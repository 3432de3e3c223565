import { Job } from '@ppc/lib/db';
import { subjects } from '@ppc/proto';
import { requireCaller, tenantOf, tenantSql } from '../context.ts';
import { NotFoundError } from '../graphql/errors.ts';
import type { Context, GraphQLModule } from '../graphql/module.ts';
import { cancelRun, retryRun } from './commands.ts';
import { replayDeadLetter } from './dead-letters.ts';
import { runEventStream } from './events.ts';
import { MAX_BATCH } from './hub.ts';
import { listRuns, loadRunView, PAGE_DEFAULT, type RunFilter } from './queries.ts';
import { outputViews, type RunView } from './view.ts';

const typeDefs = /* GraphQL */ `
  enum RunStatus {
    queued
    running
    succeeded
    failed
    cancelled
  }
  enum RunTrigger {
    schedule
    manual
    replay
  }
  enum RunEventKind {
    queued
    started
    progress
    succeeded
    failed
    cancelled
  }

  input RunFilter {
    jobId: ID
    accountId: ID
    status: RunStatus
    "Queued at or after."
    from: DateTime
    "Queued before."
    to: DateTime
  }

  type RunJob {
    id: ID!
    name: String!
  }

  type RunOutput {
    "sheets, xlsx or csv"
    kind: String!
    name: String!
    "A Google Sheets link, or for files the gateway's download path /artifacts/<runId>/<name>."
    url: String!
  }

  type Run {
    id: ID!
    job: RunJob!
    trigger: RunTrigger!
    status: RunStatus!
    "fetching, processing or writing: the last reported phase."
    phase: String
    "0-100"
    progress: Float!
    attempt: Int!
    queuedAt: DateTime!
    startedAt: DateTime
    finishedAt: DateTime
    "Milliseconds per phase and in total."
    timings: JSON
    "Rows per sheet."
    rowCounts: JSON
    errorCode: String
    errorMessage: String
    workerInstance: String
    outputs: [RunOutput!]!
  }

  type RunPage {
    "Newest first."
    items: [Run!]!
    "Pass as 'after' for the next page; null on the last page."
    nextCursor: String
  }

  type RunSheetProgress {
    index: Int!
    count: Int!
    name: String!
  }

  "One event of a run, as published by the mesh."
  type RunEvent {
    runId: ID!
    "Position in the event stream: increases in publish order."
    seq: Float!
    kind: RunEventKind!
    "The run status this event means."
    status: RunStatus!
    at: DateTime!
    attempt: Int!
    "queued"
    jobId: ID
    trigger: RunTrigger
    "started"
    worker: String
    region: String
    "progress"
    phase: String
    percent: Float
    rows: Int
    sheet: RunSheetProgress
    "A progress note, or the reason of a cancel or failure."
    message: String
    "succeeded"
    outputs: [RunOutput!]
    rowCounts: JSON
    timings: JSON
    "failed, cancelled"
    errorCode: String
    errorMessage: String
    retryable: Boolean
  }

  "Events of one run, in publish order."
  type RunUpdate {
    runId: ID!
    "The first message carries the run's events so far (at most ${MAX_BATCH} a message), each later one those published since."
    events: [RunEvent!]!
  }

  type DeadLetterReplay {
    seq: Float!
    "The original subject the message was published to again."
    subject: String!
    type: String
    reason: String
    stream: String!
    replayedSeq: Float!
    duplicate: Boolean!
  }

  extend type Query {
    "The organization's runs, newest first; first: 1-200."
    runs(filter: RunFilter, first: Int = ${PAGE_DEFAULT}, after: String): RunPage!
    run(id: ID!): Run
  }

  extend type Mutation {
    "Queued or running runs only (else CONFLICT). The status changes once the cancel is recorded."
    cancelRun(id: ID!): Run!
    "Failed or cancelled runs only (else CONFLICT): queues a new run of the job, one attempt later."
    retryRun(id: ID!): Run!
    "Publishes a dead-lettered message again to its original subject (owners only)."
    replayDeadLetter(seq: Float!): DeadLetterReplay!
  }

  extend type Subscription {
    "Every event of the run from its first, in publish order, then live: events that arrive together come in one message."
    runUpdated(runId: ID!): RunUpdate!
    "Every run event of the organization from now on."
    runsFeed: RunEvent!
  }
`;

/** A RunView, or a `Run` entity another module returns (e.g. `runJob` with the run `enqueueRun` created). */
type RunLike = Partial<RunView> & {
  id: string;
  outputLinks?: RunView['outputs'] | null;
  job: { id: string; name?: string };
};

export const runsModule: GraphQLModule = {
  typeDefs,
  // A run writes one output per file or spreadsheet.
  listSizes: { 'Run.outputs': 10, 'RunEvent.outputs': 10 },
  resolvers: {
    // RunViews resolve every field by name; these also let an entity stand in for one.
    Run: {
      // Synchronous when the row carries the name (every listing does): no promise per run of a page.
      job: (src: unknown, _args: unknown, ctx: Context) => {
        const run = src as RunLike;
        if (typeof run.job.name === 'string') return { id: run.job.id, name: run.job.name };
        const caller = requireCaller(ctx, 'read');
        return tenantOf(ctx, 'read')
          .findOne(Job, { id: run.job.id, organization: caller.organizationId })
          .then((job) => ({ id: run.job.id, name: job?.name ?? '' }));
      },
      outputs: (src: unknown) => {
        const run = src as RunLike;
        return run.outputs ?? outputViews(run.id, run.outputLinks ?? null);
      },
      progress: (src: unknown) => (src as RunLike).progress ?? 0,
    },
    Query: {
      runs: (
        _root,
        args: { filter?: RunFilter | null; first?: number | null; after?: string | null },
        ctx: Context,
      ) => {
        const orgId = requireCaller(ctx, 'read').organizationId;
        return listRuns(tenantSql(ctx, 'read'), orgId, args);
      },
      run: async (_root, args: { id: string }, ctx: Context) => {
        const orgId = requireCaller(ctx, 'read').organizationId;
        const run = await loadRunView(tenantSql(ctx, 'read'), orgId, args.id);
        if (!run) throw new NotFoundError('run', args.id);
        return run;
      },
    },
    Mutation: {
      cancelRun: (_root, args: { id: string }, ctx: Context) =>
        cancelRun(ctx.deps, tenantOf(ctx, 'run'), requireCaller(ctx, 'run'), args.id),
      retryRun: (_root, args: { id: string }, ctx: Context) =>
        retryRun(ctx.deps, tenantOf(ctx, 'run'), requireCaller(ctx, 'run'), args.id),
      replayDeadLetter: (_root, args: { seq: number }, ctx: Context) =>
        replayDeadLetter(ctx.deps, requireCaller(ctx, 'admin'), args.seq),
    },
    Subscription: {
      runUpdated: {
        subscribe: async (_root: unknown, args: { runId: string }, ctx: Context) => {
          const caller = requireCaller(ctx, 'read');
          const run = await loadRunView(tenantSql(ctx, 'read'), caller.organizationId, args.runId);
          if (!run) throw new NotFoundError('run', args.runId);
          return ctx.deps.runEvents.subscribe(run.id, caller.organizationId);
        },
        resolve: (event: unknown) => event,
      },
      runsFeed: {
        subscribe: async (_root: unknown, _args: unknown, ctx: Context) => {
          const caller = requireCaller(ctx, 'read');
          return runEventStream(ctx.deps, {
            subject: subjects.allRunEvents,
            from: 'new',
            orgId: caller.organizationId,
            log: ctx.deps.log,
          });
        },
        resolve: (event: unknown) => event,
      },
    },
  },
};
