/**
 * What a user may do to a run: cancel it, retry it. The runs table is system's projection of run events, so a
 * cancel is said with events (the recorder projects them; workers obey them), never by writing the row here.
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import { Job } from '@ppc/lib/db';
import { publish, publishCore } from '@ppc/lib/nats';
import { RunCancelledMsg, RunCancelMsg } from '@ppc/proto';
import type { Caller, GatewayDeps } from '../context.ts';
import { ConflictError, NotFoundError } from '../graphql/errors.ts';
import { enqueueRun } from '../jobs/enqueue.ts';
import { sqlOf } from '../db/fast-sql.ts';
import { loadRunView } from './queries.ts';
import type { RunView } from './view.ts';

const CANCELLABLE = new Set(['queued', 'running']);
const RETRYABLE = new Set(['failed', 'cancelled']);
/** The task schemas' highest attempt number. */
const MAX_ATTEMPT = 100;

async function mustLoad(em: EntityManager, caller: Caller, runId: string): Promise<RunView> {
  const run = await loadRunView(sqlOf(em), caller.organizationId, runId);
  if (!run) throw new NotFoundError('run', runId);
  return run;
}

/**
 * Cancels a queued or running run:
 * - `cmd.run.<id>.cancel` (core NATS) reaches the worker holding the run, which aborts it; and
 * - a `cancelled` event for the run's current attempt is published right away. It is the cancel's record: the
 *   recorder projects it (a terminal event is final for its attempt), and a worker that takes the task later
 *   finds the attempt finished (`finishedAttempt`) and acknowledges it without work. A worker that aborts on the
 *   command publishes the same event with the same msg id, which the stream drops as a duplicate. So a queued
 *   run, or a running one whose worker died, ends cancelled too.
 * Returns the run as stored now: its status changes when the recorder has projected the event.
 */
export async function cancelRun(deps: GatewayDeps, em: EntityManager, caller: Caller, runId: string): Promise<RunView> {
  const run = await mustLoad(em, caller, runId);
  if (!CANCELLABLE.has(run.status)) {
    throw new ConflictError(`run ${run.id} is ${run.status}; only queued or running runs can be cancelled`);
  }
  const at = new Date().toISOString();
  const reason = 'cancelled by a user';
  // The command first: a worker that is running the attempt stops as early as possible.
  publishCore(deps.nc, RunCancelMsg, {
    runId: run.id,
    orgId: caller.organizationId,
    reason,
    requestedBy: caller.userId,
    at,
  });
  await deps.nc.flush();
  await publish(deps.js, RunCancelledMsg, {
    runId: run.id,
    orgId: caller.organizationId,
    attempt: run.attempt,
    at,
    reason,
  });
  deps.log.info({ runId: run.id, userId: caller.userId, status: run.status }, 'run cancel requested');
  return run;
}

/** Queues a new run of a failed or cancelled run's job, one attempt later, and publishes its task at once. */
export async function retryRun(deps: GatewayDeps, em: EntityManager, caller: Caller, runId: string): Promise<RunView> {
  const run = await mustLoad(em, caller, runId);
  if (!RETRYABLE.has(run.status)) {
    throw new ConflictError(`run ${run.id} is ${run.status}; only failed or cancelled runs can be retried`);
  }
  if (run.attempt >= MAX_ATTEMPT) throw new ConflictError(`run ${run.id} has reached ${MAX_ATTEMPT} attempts`);
  const job = await em.findOne(Job, { id: run.job.id, organization: caller.organizationId });
  if (!job) throw new NotFoundError('job', run.job.id);
  const created = await enqueueRun(em, job, {
    trigger: 'replay',
    region: deps.config.region,
    attempt: run.attempt + 1,
  });
  deps.relay.kick();
  deps.log.info({ runId: created.id, retryOf: run.id, userId: caller.userId }, 'run retried');
  const view = await loadRunView(sqlOf(em), caller.organizationId, created.id);
  if (!view) throw new NotFoundError('run', created.id);
  return view;
}
