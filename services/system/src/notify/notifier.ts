import type { JetStreamManager } from '@nats-io/jetstream';
import { type Consumption, consume } from '@ppc/lib/nats';
import type { ServiceContext } from '@ppc/lib/service';
import { consumers, RunFailedMsg, RunSucceededMsg } from '@ppc/proto';
import { type NotifyDeps, resolveNotifierConfig } from './config.ts';
import type { Delivery } from './ledger.ts';
import { notifyRunFailed, notifyRunSucceeded, type RunEventMeta } from './run-events.ts';

export interface NotifierOptions {
  /**
   * Events handled at once per consumer; default 4 failures (the mailer has 2 connections) and 64 successes
   * (most need no mail, and each may wait up to a second for the recorder's floor to be asked again).
   */
  concurrency?: number;
  /** Test hook: runs after each delivery's outcome is recorded, before the event is acknowledged. */
  afterDeliver?(delivery: Delivery): Promise<void> | void;
}

/** The parts of the service context the notifier uses (`ServiceContext` fits). */
export type NotifierContext = Pick<ServiceContext<unknown>, 'js' | 'jsm' | 'log'> &
  Partial<Pick<ServiceContext<unknown>, 'metrics' | 'track'>>;

/**
 * The most often the recorder's ack floor is asked for while a success waits for it. Consumer info is not
 * cheap on nats-server 2.9: it recounts the consumer's pending messages over every subject its wildcard filter
 * matches (~11 ms of server time with 100,000 events on 30,000 run subjects, and it grows with the stream).
 */
const FLOOR_POLL_MS = 1000;

export interface RecorderFloor {
  /**
   * True once the run recorder (`system-recorder`) has acknowledged every run event up to `streamSeq`; waits
   * up to `waitMs` for it (a success on the heels of its own events is projected a few milliseconds later).
   */
  caughtUp(streamSeq: number, opts?: { waitMs?: number; signal?: AbortSignal }): Promise<boolean>;
}

/**
 * The recorder's ack floor, shared by every event waiting for it. The floor only grows, so an event at or
 * below the last one seen needs no request; one past it asks the server, at most every `FLOOR_POLL_MS` and
 * once at a time for all of them. Waiting in the handler, rather than naking at once, keeps a notifier ahead
 * of a lagging recorder from cycling every success through redeliveries: its slots wait instead, and once a
 * refresh moves the floor, the successes behind it go through without asking again.
 */
export function recorderFloor(jsm: JetStreamManager): RecorderFloor {
  const recorder = consumers.systemRecorder;
  let floor = 0;
  let askedAt = Number.NEGATIVE_INFINITY;
  let inFlight: Promise<void> | undefined;
  const refresh = async () => {
    const wait = askedAt + FLOOR_POLL_MS - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    askedAt = performance.now();
    const info = await jsm.consumers.info(recorder.stream, recorder.durable);
    floor = Math.max(floor, info.ack_floor.stream_seq);
  };
  const refreshOnce = () => {
    inFlight ??= refresh().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };
  return {
    async caughtUp(streamSeq, opts = {}) {
      const deadline = performance.now() + (opts.waitMs ?? 0);
      for (;;) {
        if (floor >= streamSeq) return true;
        await refreshOnce();
        if (floor >= streamSeq) return true;
        if (performance.now() >= deadline || opts.signal?.aborted) return false;
      }
    },
  };
}

/** How long a success waits in its handler for the recorder before it is handed back (nak) to come again. */
const RECORDER_WAIT_MS = 5_000;

/**
 * Consumes `consumers.systemNotifierFailed` and `consumers.systemNotifierSucceeded` (only the run events that
 * can cause mail: JetStream delivers nothing else to the notifier) and mails failures and recoveries (see
 * `run-events.ts`). A message is retried when the database or the SMTP server is unavailable, when another
 * sender holds the notification's claim, and, for a success, while the run recorder (`system-recorder`) has
 * not acknowledged the events up to it; a permanent SMTP refusal is recorded as `failed` and the event
 * acknowledged. Tracked by the service when `ctx.track` is there, so shutdown hands in-flight events back.
 */
export async function startNotifier(
  ctx: NotifierContext,
  deps: NotifyDeps,
  opts: NotifierOptions = {},
): Promise<Consumption> {
  resolveNotifierConfig(deps.config); // bad config stops start-up, not the first failure mail
  const log = ctx.log.child({ component: 'notifier' });
  const d: NotifyDeps = { ...deps, log, metrics: deps.metrics ?? ctx.metrics };
  const floor = recorderFloor(ctx.jsm);
  const metaOf = (m: Omit<RunEventMeta, 'afterDeliver' | 'recorderCaughtUp'>): RunEventMeta => ({
    streamSeq: m.streamSeq,
    deliveryCount: m.deliveryCount,
    isLastAttempt: m.isLastAttempt,
    signal: m.signal,
    afterDeliver: opts.afterDeliver,
    recorderCaughtUp: (seq) => floor.caughtUp(seq, { waitMs: RECORDER_WAIT_MS, signal: m.signal }),
  });
  const skippedLog = (runId: string, type: string, outcome: { action: string; reason?: string }) => {
    if (outcome.action === 'skipped')
      log.debug({ runId, type, reason: outcome.reason }, 'no notification for this event');
  };
  const consumeOpts = {
    log: ctx.log,
    metrics: ctx.metrics,
    // No watchMaxDeliveries: it deletes the given-up message from its stream, and EVENTS is shared.
  };
  const failures = await consume(
    ctx.js,
    consumers.systemNotifierFailed,
    [RunFailedMsg],
    async (body, m) => skippedLog(body.runId, m.type, await notifyRunFailed(d, body, metaOf(m))),
    { ...consumeOpts, concurrency: opts.concurrency ?? 4 },
  );
  let successes: Consumption;
  try {
    successes = await consume(
      ctx.js,
      consumers.systemNotifierSucceeded,
      [RunSucceededMsg],
      async (body, m) => skippedLog(body.runId, m.type, await notifyRunSucceeded(d, body, metaOf(m))),
      { ...consumeOpts, concurrency: opts.concurrency ?? 64 },
    );
  } catch (err) {
    await failures.stop(0);
    throw err;
  }
  const both: Consumption = {
    inFlight: () => failures.inFlight() + successes.inFlight(),
    async stop(graceMs) {
      await Promise.all([failures.stop(graceMs), successes.stop(graceMs)]);
    },
  };
  return ctx.track ? ctx.track(both) : both;
}
