import type { BodyOf, ConsumerSpec, MessageDef } from '@ppc/proto';
import { consume } from '../nats/consume.ts';
import type { ServiceContext } from '../service/index.ts';
import { handleRunTask, publishRunFailed, type RunControl, type RunResult, type RunTaskFields } from './lifecycle.ts';

export interface ConsumeRunTasksOptions<T> {
  /** Tasks run at once. */
  concurrency: number;
  /** The task's time limit. */
  timeLimitMs(task: T): number;
}

/**
 * A worker's task loop: consumes run tasks of one type and runs each through `handleRunTask` (lifecycle events,
 * cancel, time limit, finished attempts skipped); a task given up on is recorded as `failed`. Tracked by the
 * service, so shutdown hands back what is in flight.
 */
export async function consumeRunTasks<D extends MessageDef>(
  ctx: ServiceContext<unknown>,
  spec: ConsumerSpec,
  def: D,
  opts: ConsumeRunTasksOptions<BodyOf<D>>,
  work: (task: BodyOf<D> & RunTaskFields, control: RunControl) => Promise<RunResult>,
): Promise<void> {
  const deps = { nc: ctx.nc, js: ctx.js, jsm: ctx.jsm, log: ctx.log, worker: ctx.instanceId, region: ctx.region };
  ctx.track(
    await consume(
      ctx.js,
      spec,
      [def],
      async (task, hctx) => {
        const run = task as BodyOf<D> & RunTaskFields;
        await handleRunTask(deps, run, hctx, { timeLimitMs: opts.timeLimitMs(task) }, (control) => work(run, control));
      },
      {
        concurrency: opts.concurrency,
        log: ctx.log,
        metrics: ctx.metrics,
        onFailure: (task, err) => publishRunFailed(ctx.js, task as RunTaskFields, err),
        watchMaxDeliveries: { nc: ctx.nc, jsm: ctx.jsm },
      },
    ),
  );
}
