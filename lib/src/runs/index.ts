export {
  finishedAttempt,
  type HandleRunOptions,
  handleRunTask,
  type ProgressUpdate,
  publishRunFailed,
  RunCancelledError,
  type RunControl,
  type RunDeps,
  type RunResult,
  type RunTaskFields,
  RunTimeLimitError,
} from './lifecycle.ts';
export { type ConsumeRunTasksOptions, consumeRunTasks } from './consume-runs.ts';
