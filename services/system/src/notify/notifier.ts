import { type Consumption, consume } from '@ppc/lib/nats';
import type { ServiceContext } from '@ppc/lib/service';
import { type BodyOf, consumers, RunFailedMsg, RunSucceededMsg, runEventMessages } from '@ppc/proto';
import { type NotifyDeps, resolveNotifierConfig } from './config.ts';
import type { Delivery } from './ledger.ts';
import { notifyRunFailed, notifyRunSucceeded } from './run-events.ts';

export interface NotifierOptions {
  /** Events handled at once; default 4 (the mailer has 2 connections; most events need no mail). */
  concurrency?: number;
  /** Test hook: runs after each delivery's outcome is recorded, before the event is acknowledged. */
  afterDeliver?(delivery: Delivery): Promise<void> | void;
}

/** The parts of the service context the notifier uses (`ServiceContext` fits). */
export type NotifierContext = Pick<ServiceContext<unknown>, 'js' | 'jsm' | 'log'> &
  Partial<Pick<ServiceContext<unknown>, 'metrics' | 'track'>>;

/**
 * Consumes `consumers.systemNotifier` (every run event; all but `failed` and `succeeded` are acknowledged
 * without effect) and mails failures and recoveries (see `run-events.ts`). A message is retried when the
 * database or the SMTP server is unavailable, when another sender holds the notification's claim, and, for a
 * success, while the run recorder (`system-recorder`) has not acknowledged the events up to it; a permanent SMTP refusal is recorded as `failed` and the
 * event acknowledged. Tracked by the service when `ctx.track` is there, so shutdown hands in-flight events
 * back.
 */
export async function startNotifier(
  ctx: NotifierContext,
  deps: NotifyDeps,
  opts: NotifierOptions = {},
): Promise<Consumption> {
  resolveNotifierConfig(deps.config); // bad config stops start-up, not the first failure mail
  const log = ctx.log.child({ component: 'notifier' });
  const d: NotifyDeps = { ...deps, log, metrics: deps.metrics ?? ctx.metrics };
  const recorder = consumers.systemRecorder;
  const recorderCaughtUp = async (streamSeq: number) =>
    (await ctx.jsm.consumers.info(recorder.stream, recorder.durable)).ack_floor.stream_seq >= streamSeq;
  const consumption = await consume(
    ctx.js,
    consumers.systemNotifier,
    runEventMessages,
    async (body, m) => {
      const meta = {
        streamSeq: m.streamSeq,
        deliveryCount: m.deliveryCount,
        isLastAttempt: m.isLastAttempt,
        signal: m.signal,
        afterDeliver: opts.afterDeliver,
        recorderCaughtUp,
      };
      let outcome: Awaited<ReturnType<typeof notifyRunFailed>> | undefined;
      if (m.type === RunFailedMsg.type) outcome = await notifyRunFailed(d, body as BodyOf<typeof RunFailedMsg>, meta);
      else if (m.type === RunSucceededMsg.type) {
        outcome = await notifyRunSucceeded(d, body as BodyOf<typeof RunSucceededMsg>, meta);
      }
      if (outcome?.action === 'skipped') {
        log.debug({ runId: body.runId, type: m.type, reason: outcome.reason }, 'no notification for this event');
      }
    },
    {
      concurrency: opts.concurrency ?? 4,
      log: ctx.log,
      metrics: ctx.metrics,
      // No watchMaxDeliveries: it deletes the given-up message from its stream, and EVENTS is shared.
    },
  );
  return ctx.track ? ctx.track(consumption) : consumption;
}
