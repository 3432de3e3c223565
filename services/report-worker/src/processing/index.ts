/**
 * Report processing: a pool of threads that run reports' `map` over packed row batches, and `runReport`, which
 * streams an account's data into it with bounded memory, merges the partials and returns the sheets.
 *
 *   const pool = new ReportPool({ threads });          // once per process; `await pool.warm()` at start
 *   const result = await runReport(task.reportType, task.params, {
 *     connector, account, pool, today: todayIn(account.timeZone), signal, onProgress,
 *   });                                                // throws RetryableError / PermanentError / signal.reason
 *   for (const sheet of result.sheets) write(sheet);   // { name, columns: [{ key, header, type }], rows }
 */
export { guarded, THREAD_FAILED, THREAD_OUT_OF_MEMORY, type ThreadReply, threadFailure, unwrap } from './boundary.ts';
export { ReportPool, type ReportPoolOptions, type ReportPoolStats } from './pool.ts';
export {
  type ConnectorRunOptions,
  DEFAULT_ROWS_PER_TASK,
  REPORT_TIME_LIMIT,
  REPORT_TYPE_UNKNOWN,
  type ReportPhase,
  type ReportProgress,
  type ReportResult,
  type ReportStats,
  type RunReportOptions,
  runReport,
  runReportFrom,
  todayIn,
} from './run.ts';
export { BatchSlots } from './slots.ts';
export { type BatchSource, type ConnectorSourceOptions, connectorSource } from './source.ts';
