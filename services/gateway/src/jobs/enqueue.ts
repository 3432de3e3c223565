import type { EntityManager } from '@mikro-orm/postgresql';
import { addToOutbox, buildRunTask, cannotRunReason, Job, newId, Run } from '@ppc/lib/db';
import type { MessageDef } from '@ppc/proto';
import { ConflictError, NotFoundError } from '../graphql/errors.ts';

export interface EnqueueRunOptions {
  trigger: 'manual' | 'replay';
  /** Region whose workers take the task (the gateway's `PPC_REGION`). */
  region: string;
  /** Default 1. */
  attempt?: number;
}

interface JobState {
  organization_id: string;
  enabled: boolean;
  disabled_reason: string | null;
  kind: 'report' | 'urlcheck';
  report_type: string | null;
  params: Record<string, unknown>;
  output: Record<string, unknown>;
  account_id: string;
  platform: string | null;
  connection_id: string | null;
  account_status: string | null;
  connection_status: string | null;
}

// Locks the job row (`of j`): `deleteJob` takes the same lock, so a run is never added to a job being deleted.
const JOB_STATE_SQL = `
select j.organization_id, j.enabled, j.disabled_reason, j.kind, j.report_type, j.params, j.output, j.account_id,
       a.platform, a.connection_id, a.status as account_status, c.status as connection_status
  from jobs j
  left join ad_accounts a on a.id = j.account_id
  left join connections c on c.id = a.connection_id
 where j.id = ? and j.organization_id = ?
 for update of j`;

/**
 * Queues a run of `job` now: the run row (status `queued`) and its task as an outbox row, in one transaction on
 * `em` (a tenant entity manager), from the job's state as locked inside it rather than from the given entity.
 * Refuses with CONFLICT when the job is disabled or its account or connection is gone or revoked. The caller kicks
 * the outbox relay after this resolves, so the task is published at once.
 */
export async function enqueueRun(em: EntityManager, job: Job, opts: EnqueueRunOptions): Promise<Run> {
  const orgId = job.organization.id;
  return em.transactional(async (tx) => {
    const [state] = await tx.execute<JobState[]>(JOB_STATE_SQL, [job.id, orgId]);
    if (!state) throw new NotFoundError('job', job.id);
    if (!state.enabled) {
      throw new ConflictError(
        `job ${job.id} is disabled${state.disabled_reason ? ` (${state.disabled_reason})` : ''}; enable it first`,
      );
    }
    const gone = cannotRunReason({
      accountId: state.account_id,
      accountStatus: state.account_status,
      connectionId: state.connection_id,
      connectionStatus: state.connection_status,
    });
    if (gone) throw new ConflictError(`job ${job.id} cannot run: ${gone}`);

    const runId = newId();
    const attempt = opts.attempt ?? 1;
    // Built before anything is staged: a job whose stored fields make no valid task writes nothing.
    const task = buildRunTask({
      runId,
      jobId: job.id,
      orgId,
      accountId: state.account_id,
      connectionId: state.connection_id,
      platform: state.platform,
      kind: state.kind,
      reportType: state.report_type,
      params: state.params,
      output: state.output,
      region: opts.region,
      trigger: opts.trigger,
      attempt,
      enqueuedAt: new Date().toISOString(),
    });
    const run = tx.create(Run, {
      id: runId,
      organization: orgId,
      job: tx.getReference(Job, job.id),
      trigger: opts.trigger,
      status: 'queued',
      attempt,
    });
    // The run first: the outbox row references it.
    await tx.flush();
    const def: MessageDef = task.def;
    addToOutbox(tx, def, task.body, { organizationId: orgId, runId });
    await tx.flush();
    return run;
  });
}
