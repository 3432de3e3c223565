/**
 * Runs a report: validate parameters, plan, stream each query's rows into the threads, merge partials as they come
 * back, finalize into sheets.
 *
 * Memory stays bounded by `(maxInFlight + 1) × rowsPerTask` rows plus the partials, whatever the row count: the
 * fetch loop packs one task at a time and waits for a free slot before reading on, so a slow pool slows the stream
 * down instead of piling rows up. Cancelling (the caller's signal, or the type's time limit) aborts the stream and
 * every thread task at once.
 */
import type { AccountRef, AdPlatformConnector } from '@ppc/lib/ads';
import { PermanentError, RetryableError } from '@ppc/lib/errors';
import { ReportParamsError, type ReportTypeId, reportTypes, validateReportParams } from '@ppc/proto';
import { type PackedBatch, reportDefinition, type Sheet } from '../reports/index.ts';
import type { ReportPool } from './pool.ts';
import { BatchSlots } from './slots.ts';
import { type BatchSource, connectorSource } from './source.ts';

export type ReportPhase = 'fetching' | 'processing' | 'finalizing';

export interface ReportProgress {
  /** `fetching` while rows are read (threads process meanwhile), `processing` once all are read, then `finalizing`. */
  phase: ReportPhase;
  /** The query being read (1-based index). */
  query: { index: number; count: number; id: string };
  rowsFetched: number;
  rowsProcessed: number;
  /** A coarse estimate: share of queries read and processed, finalizing being one more step. */
  percent: number;
}

export interface RunReportOptions {
  pool: ReportPool;
  /** The account's current calendar day (YYYY-MM-DD in its time zone); see `todayIn`. */
  today: string;
  signal?: AbortSignal;
  /** Called at most every `progressIntervalMs` (and once per phase change). */
  onProgress?: (p: ReportProgress) => void;
  progressIntervalMs?: number;
  /** Rows per thread task; default 65,536. */
  rowsPerTask?: number;
  /** Tasks handed to the pool and not yet merged; default twice the threads. */
  maxInFlight?: number;
  /** Abort after this long; default the report type's `timeLimitMs`. */
  timeLimitMs?: number;
}

export interface ConnectorRunOptions extends RunReportOptions {
  connector: Pick<AdPlatformConnector, 'streamReport'>;
  account: AccountRef;
  /** The connector's stream timeout (longest silence), if not its default. */
  fetchTimeoutMs?: number;
}

export interface ReportStats {
  /** Rows read per query id. */
  rows: Record<string, number>;
  /** Shared memory held for batches at the end (bounded by the slots: tasks in flight + 1). */
  batchMemoryBytes: number;
  tasks: number;
  /** The most tasks that were in the pool (running or queued) or awaiting their merge at one time. */
  maxTasksInFlight: number;
  /** The most rows in those tasks at one time (the packer's current task comes on top: ≤ rowsPerTask). */
  maxRowsInFlight: number;
  rowsPerTask: number;
  maxInFlight: number;
  threads: number;
  cpu: {
    /** CPU time of the threads on this run's tasks (the kernel's accounting: coarse for tasks of a millisecond). */
    threadsMs: number;
    /** CPU time of the calling thread during the run (fetching, packing, merging, finalizing; and whatever else it
     * did meanwhile, such as other runs). */
    mainMs: number;
  };
  timings: {
    /** From the start until every query was read. */
    fetchingMs: number;
    /** From the start until every partial was merged. */
    processingMs: number;
    finalizingMs: number;
    totalMs: number;
  };
}

export interface ReportResult {
  type: ReportTypeId;
  /** The parameters with every default applied. */
  params: unknown;
  /** The resolved plan (dates, thresholds). */
  plan: unknown;
  sheets: Sheet[];
  stats: ReportStats;
}

export const REPORT_TYPE_UNKNOWN = 'REPORT_TYPE_UNKNOWN';
export const REPORT_TIME_LIMIT = 'REPORT_TIME_LIMIT';

/** Runs a report over an ad-platform account: the worker's entry point. */
export function runReport(type: string, params: unknown, opts: ConnectorRunOptions): Promise<ReportResult> {
  const rowsPerTask = opts.rowsPerTask ?? DEFAULT_ROWS_PER_TASK;
  const source = connectorSource(opts.connector, opts.account, {
    rowsPerTask,
    ...(opts.fetchTimeoutMs ? { timeoutMs: opts.fetchTimeoutMs } : {}),
  });
  return runReportFrom(type, params, source, { ...opts, rowsPerTask });
}

export const DEFAULT_ROWS_PER_TASK = 65_536;

/** Runs a report over any source of packed batches (the connector in production; recorded batches in benchmarks). */
export async function runReportFrom(
  type: string,
  params: unknown,
  source: BatchSource,
  opts: RunReportOptions,
): Promise<ReportResult> {
  const started = performance.now();
  if (!Object.hasOwn(reportTypes, type)) {
    throw new PermanentError(`unknown report type ${JSON.stringify(type)}`, { code: REPORT_TYPE_UNKNOWN });
  }
  const id = type as ReportTypeId;
  const def = reportDefinition(id);
  let validated: unknown;
  let plan: unknown;
  try {
    validated = validateReportParams(id, params);
    plan = def.plan(validated, { today: opts.today });
  } catch (err) {
    if (err instanceof ReportParamsError) throw new PermanentError(err.message, { code: err.code, cause: err });
    throw err;
  }
  const queries = def.queries(plan);
  const rowsPerTask = opts.rowsPerTask ?? DEFAULT_ROWS_PER_TASK;
  const maxInFlight = opts.maxInFlight ?? opts.pool.threads * 2;
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1) throw new RangeError('maxInFlight must be a positive integer');
  const timeLimitMs = opts.timeLimitMs ?? reportTypes[id].timeLimitMs;
  // setTimeout fires at once for anything longer.
  if (!(timeLimitMs > 0 && timeLimitMs <= 2 ** 31 - 1))
    throw new RangeError(`timeLimitMs out of range: ${timeLimitMs}`);

  // One controller stops everything: the caller's cancel, the time limit, or the first failure.
  const stop = new AbortController();
  const onCancel = () => stop.abort(opts.signal?.reason);
  opts.signal?.addEventListener('abort', onCancel, { once: true });
  if (opts.signal?.aborted) onCancel();
  const timer = setTimeout(
    () =>
      stop.abort(
        new RetryableError(`report ${id} exceeded its time limit of ${Math.round(timeLimitMs / 1000)} s`, {
          code: REPORT_TIME_LIMIT,
        }),
      ),
    timeLimitMs,
  );

  const stopped = new Promise<never>((_, reject) => {
    stop.signal.addEventListener('abort', () => reject(stop.signal.reason), { once: true });
  });
  stopped.catch(() => {});

  const stats: ReportStats = {
    rows: {},
    batchMemoryBytes: 0,
    tasks: 0,
    maxTasksInFlight: 0,
    maxRowsInFlight: 0,
    rowsPerTask,
    maxInFlight,
    threads: opts.pool.threads,
    cpu: { threadsMs: 0, mainMs: 0 },
    timings: { fetchingMs: 0, processingMs: 0, finalizingMs: 0, totalMs: 0 },
  };
  const mainCpu = process.threadCpuUsage();
  // One slot per task in flight, and one for the batch being packed: the loop never holds more.
  const slots = new BatchSlots(maxInFlight + 1);
  let acc = def.empty(plan);
  let rowsFetched = 0;
  let rowsProcessed = 0;
  let rowsInFlight = 0;
  const inFlight = new Set<Promise<void>>();
  let failure = null as { error: unknown } | null;
  const fail = (error: unknown) => {
    failure ??= { error };
    stop.abort(error);
  };

  let lastProgress = 0;
  let lastPhase: ReportPhase | null = null;
  let queryIndex = 0;
  let queriesDone = 0;
  const interval = opts.progressIntervalMs ?? 250;
  const progress = (phase: ReportPhase, force = false) => {
    if (!opts.onProgress) return;
    const now = performance.now();
    if (!force && phase === lastPhase && now - lastProgress < interval) return;
    lastProgress = now;
    lastPhase = phase;
    const q = queries[Math.min(queryIndex, queries.length - 1)];
    try {
      opts.onProgress({
        phase,
        query: { index: Math.min(queryIndex + 1, queries.length), count: queries.length, id: q?.id ?? '' },
        rowsFetched,
        rowsProcessed,
        percent: phase === 'finalizing' ? 99 : Math.floor((100 * queriesDone) / (queries.length + 1)),
      });
    } catch {
      // A progress listener's failure must not fail the report.
    }
  };

  const dispatch = (queryId: string, batch: PackedBatch) => {
    const rows = batch.rows;
    rowsInFlight += rows;
    stats.tasks += 1;
    const task: Promise<void> = opts.pool.map(id, queryId, plan, batch, stop.signal).then(
      ({ value: partial, cpuMs }) => {
        stats.cpu.threadsMs += cpuMs;
        if (failure) return;
        try {
          acc = def.merge(acc, partial, plan);
        } catch (err) {
          fail(err);
          return;
        }
        rowsProcessed += rows;
        progress(lastPhase ?? 'fetching');
      },
      (err) => fail(err),
    );
    const tracked = task.finally(() => {
      slots.release(batch.buffer);
      rowsInFlight -= rows;
      inFlight.delete(tracked);
    });
    inFlight.add(tracked);
    stats.maxTasksInFlight = Math.max(stats.maxTasksInFlight, inFlight.size);
    stats.maxRowsInFlight = Math.max(stats.maxRowsInFlight, rowsInFlight);
  };

  try {
    progress('fetching', true);
    for (queryIndex = 0; queryIndex < queries.length; queryIndex++) {
      const spec = queries[queryIndex]!;
      stats.rows[spec.id] = 0;
      const batches = source(spec, stop.signal, slots.alloc)[Symbol.asyncIterator]();
      try {
        for (;;) {
          // A source that ignores the signal must not hold a cancelled run: stop waiting on it at once.
          const pending = batches.next();
          pending.catch(() => {});
          const next = await Promise.race([pending, stopped]);
          if (next.done) break;
          const batch = next.value;
          if (failure || stop.signal.aborted) break;
          rowsFetched += batch.rows;
          stats.rows[spec.id]! += batch.rows;
          while (inFlight.size >= maxInFlight && !failure) await Promise.race(inFlight);
          if (failure) break;
          dispatch(spec.id, batch);
          progress('fetching');
        }
      } catch (err) {
        fail(stop.signal.aborted && !failure ? stop.signal.reason : err);
      } finally {
        // Closes the platform's stream when the loop ends early; not awaited, as a stuck source never returns.
        batches.return?.().catch(() => {});
      }
      if (failure) break;
      queriesDone += 1;
    }
    queryIndex = queries.length - 1;
    stats.timings.fetchingMs = performance.now() - started;
    if (!failure) progress('processing', true);
    await Promise.all(inFlight);
    if (!failure && stop.signal.aborted) fail(stop.signal.reason);
    if (failure) throw failure.error;
    stats.timings.processingMs = performance.now() - started;
    stats.batchMemoryBytes = slots.bytes;
    queriesDone = queries.length;
    progress('finalizing', true);
    const finalizeStarted = performance.now();
    const sheets = def.finalize(acc, plan);
    stats.timings.finalizingMs = performance.now() - finalizeStarted;
    stats.timings.totalMs = performance.now() - started;
    const cpu = process.threadCpuUsage(mainCpu);
    stats.cpu.mainMs = (cpu.user + cpu.system) / 1000;
    return { type: id, params: validated, plan, sheets, stats };
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onCancel);
    await Promise.allSettled(inFlight);
  }
}

/** Today's calendar day (`YYYY-MM-DD`) in an IANA time zone: the `today` of an account in that zone. */
export function todayIn(timeZone: string, now: Date = new Date()): string {
  const parts = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' })
    .formatToParts(now)
    .reduce<Record<string, string>>((acc, p) => {
      acc[p.type] = p.value;
      return acc;
    }, {});
  return `${parts.year}-${parts.month}-${parts.day}`;
}
