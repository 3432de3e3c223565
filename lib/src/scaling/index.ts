export {
  addSample,
  parseTaskStat,
  poolMeanTaskMs,
  recordTaskTime,
  SAMPLE_WEIGHT,
  type TaskTimeSample,
  taskStatKey,
  URLCHECK_TASK_TYPE,
  WEIGHT_HALF_LIFE_MS,
  weightAt,
} from './task-stats.ts';
