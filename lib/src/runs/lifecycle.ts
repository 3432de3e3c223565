/**
 * The worker side of a run's lifecycle, shared by the report worker and the URL checker: the events a run
 * publishes (`started`, throttled `progress`, `succeeded`, `failed`, `cancelled`), cancellation through
 * `cmd.run.<id>.cancel`, a per-type time limit, and idempotent redelivery (a task whose attempt already
 * finished does nothing).
 *
 * Used as the body of a `consume()` handler: `handleRunTask` returns normally on success and on cancel (the
 * task is acked), rethrows a RetryableError (nak with backoff) and a PermanentError (terminated). `failed`
 * is published from `consume()`'s `onFailure` hook (`publishRunFailed`), which runs exactly when the message
 * is given up on: a PermanentError, or any failure on the last attempt.
 */
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import {
  type BodyOf,
  RunCancelledMsg,
  RunFailedMsg,
  RunProgressMsg,
  RunStartedMsg,
  RunSucceededMsg,
  type RunProgress,
  type RunSucceeded,
  streams,
  subjects,
} from '@ppc/proto';
import type { Logger } from 'pino';
import { isRetryable, PermanentError, serializeError } from '../errors/index.ts';
import type { HandlerContext } from '../nats/consume.ts';
import { publish } from '../nats/publish.ts';

/** The fields every run task carries (`report.task.v1`, `urlcheck.task.v1`). */
export interface RunTaskFields {
  runId: string;
  orgId: string;
  attempt: number;
}

export interface RunDeps {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  log: Logger;
  /** This instance, as recorded on the run (`workerInstance`). */
  worker: string;
  region: string;
  /** Least time between two progress events of one run. Default 500 ms. */
  progressIntervalMs?: number;
}

export type ProgressUpdate = Pick<RunProgress, 'phase' | 'percent' | 'rows'> &
  Partial<Pick<RunProgress, 'sheet' | 'message'>>;

/** What a run's work gets: its abort signal and a progress reporter. */
export interface RunControl {
  /** Aborted on cancel, on the time limit, and when the consumer shuts down. Its reason says which. */
  signal: AbortSignal;
  /** Throttled: at most one event per interval; the newest update wins, and a phase change is sent at once. */
  progress(update: ProgressUpdate): void;
  log: Logger;
}

export type RunResult = Pick<RunSucceeded, 'outputs' | 'rows' | 'timings'>;

/** Raised (as the abort reason) when a user cancels the run. */
export class RunCancelledError extends Error {
  override name = 'RunCancelledError';
  readonly reason: string;
  constructor(reason: string) {
    super(`run cancelled: ${reason}`);
    this.reason = reason;
  }
}

/** The run exceeded its type's time limit: permanent, since a retry would take as long again. */
export class RunTimeLimitError extends PermanentError {
  override name = 'RunTimeLimitError';
  constructor(limitMs: number) {
    super(`the run exceeded its time limit of ${Math.round(limitMs / 1000)} s`, { code: 'RUN_TIME_LIMIT' });
  }
}

const decoder = new TextDecoder();
const MAX_MESSAGE = 2000;
const now = () => new Date().toISOString();

/** The terminal event already published for this attempt of the run, if any (read from EVENTS). */
export async function finishedAttempt(
  jsm: JetStreamManager,
  task: RunTaskFields,
): Promise<'succeeded' | 'failed' | 'cancelled' | null> {
  for (const kind of ['succeeded', 'cancelled', 'failed'] as const) {
    const msg = await jsm.streams
      .getMessage(streams.events.name, { last_by_subj: subjects.runEvent(task.runId, kind) })
      .catch(() => null);
    if (!msg) continue;
    const body = JSON.parse(decoder.decode(msg.data)) as { attempt?: number };
    if (body.attempt === task.attempt) return kind;
  }
  return null;
}

/** Publishes `failed` for a task being given up on; for `consume()`'s `onFailure`. */
export async function publishRunFailed(js: JetStreamClient, task: RunTaskFields, err: unknown): Promise<void> {
  const e = serializeError(err);
  await publish(js, RunFailedMsg, {
    runId: task.runId,
    orgId: task.orgId,
    attempt: task.attempt,
    at: now(),
    code: e.code.slice(0, 100),
    message: e.message.slice(0, MAX_MESSAGE),
    retryable: isRetryable(err),
  });
}

/** Listens for `cmd.run.<id>.cancel` until closed. */
function listenForCancel(nc: NatsConnection, runId: string, onCancel: (reason: string) => void): Subscription {
  return nc.subscribe(subjects.runCancel(runId), {
    callback: (err, msg) => {
      if (err) return;
      let reason = 'cancelled by a user';
      try {
        const body = JSON.parse(decoder.decode(msg.data)) as { reason?: unknown };
        if (typeof body.reason === 'string' && body.reason) reason = body.reason.slice(0, 500);
      } catch {
        // A cancel is a cancel even when its body is unreadable.
      }
      onCancel(reason);
    },
  });
}

export interface HandleRunOptions {
  /** The run type's time limit. */
  timeLimitMs: number;
}

/**
 * Runs one delivery of a run task: skips an attempt that already finished, publishes `started`, runs `work`
 * with cancel/time-limit/shutdown signals, then publishes `succeeded` or `cancelled`. Errors propagate to
 * `consume()` (see the module comment).
 */
export async function handleRunTask<T extends RunTaskFields>(
  deps: RunDeps,
  task: T,
  hctx: Pick<HandlerContext, 'signal' | 'deliveryCount' | 'traceparent'>,
  opts: HandleRunOptions,
  work: (control: RunControl) => Promise<RunResult>,
): Promise<'succeeded' | 'cancelled' | 'skipped'> {
  const log = deps.log.child({ runId: task.runId, attempt: task.attempt, delivery: hctx.deliveryCount });
  const done = await finishedAttempt(deps.jsm, task);
  if (done) {
    log.info({ finished: done }, 'run attempt already finished; redelivered task acknowledged without work');
    return 'skipped';
  }

  const abort = new AbortController();
  const onShutdown = () => abort.abort(hctx.signal.reason);
  hctx.signal.addEventListener('abort', onShutdown, { once: true });
  const sub = listenForCancel(deps.nc, task.runId, (reason) => abort.abort(new RunCancelledError(reason)));
  const limit = setTimeout(() => abort.abort(new RunTimeLimitError(opts.timeLimitMs)), opts.timeLimitMs);
  const base = { runId: task.runId, orgId: task.orgId, attempt: task.attempt };
  const progress = new ProgressThrottle(deps, base, log, hctx.traceparent);
  try {
    // The subscription must be live before `started`: a cancel sent on seeing `started` is never missed.
    await deps.nc.flush();
    await publish(
      deps.js,
      RunStartedMsg,
      { ...base, at: now(), worker: deps.worker, region: deps.region },
      { traceparent: hctx.traceparent },
    );
    let result: RunResult;
    try {
      result = await work({ signal: abort.signal, progress: (u) => progress.update(u), log });
    } catch (err) {
      if (abort.signal.aborted) throw abort.signal.reason;
      throw err;
    }
    if (abort.signal.aborted) throw abort.signal.reason;
    await progress.stop();
    await publish(deps.js, RunSucceededMsg, { ...base, at: now(), ...result }, { traceparent: hctx.traceparent });
    return 'succeeded';
  } catch (err) {
    await progress.stop();
    if (err instanceof RunCancelledError) {
      await publish(
        deps.js,
        RunCancelledMsg,
        { ...base, at: now(), reason: err.reason },
        { traceparent: hctx.traceparent },
      );
      log.info({ reason: err.reason }, 'run cancelled');
      return 'cancelled';
    }
    throw err;
  } finally {
    clearTimeout(limit);
    sub.unsubscribe();
    hctx.signal.removeEventListener('abort', onShutdown);
  }
}

/** At most one progress event per interval per run; the newest update wins; a new phase goes out at once. */
class ProgressThrottle {
  #pending: ProgressUpdate | undefined;
  #lastSentAt = 0;
  #lastPhase: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #sending: Promise<void> = Promise.resolve();
  #stopped = false;
  readonly #intervalMs: number;
  private readonly deps: RunDeps;
  private readonly base: RunTaskFields;
  private readonly log: Logger;
  private readonly traceparent: string | undefined;

  constructor(deps: RunDeps, base: RunTaskFields, log: Logger, traceparent: string | undefined) {
    this.deps = deps;
    this.base = base;
    this.log = log;
    this.traceparent = traceparent;
    this.#intervalMs = deps.progressIntervalMs ?? 500;
  }

  update(u: ProgressUpdate): void {
    if (this.#stopped) return;
    this.#pending = u;
    const due = this.#lastSentAt + this.#intervalMs - Date.now();
    if (u.phase !== this.#lastPhase || due <= 0) {
      this.#flush();
      return;
    }
    this.#timer ??= setTimeout(() => this.#flush(), due);
  }

  #flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const u = this.#pending;
    if (!u) return;
    this.#pending = undefined;
    this.#lastSentAt = Date.now();
    this.#lastPhase = u.phase;
    const body: BodyOf<typeof RunProgressMsg> = {
      ...this.base,
      at: now(),
      phase: u.phase,
      percent: Math.min(100, Math.max(0, Math.round(u.percent * 100) / 100)),
      rows: Math.max(0, Math.floor(u.rows)),
      ...(u.sheet ? { sheet: u.sheet } : {}),
      ...(u.message ? { message: u.message.slice(0, 500) } : {}),
    };
    // Sent in order, one at a time; a lost progress event is not worth failing the run for.
    this.#sending = this.#sending.then(() =>
      publish(this.deps.js, RunProgressMsg, body, { traceparent: this.traceparent, retries: 0 }).then(
        () => undefined,
        (err: unknown) => this.log.warn({ err: (err as Error).message }, 'progress event not published'),
      ),
    );
  }

  /** Drops pending updates and waits for the ones sent, so `succeeded` follows the last progress event. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#pending = undefined;
    await this.#sending;
  }
}
