/**
 * Recent task time per worker pool and task type, in the `task-stats` KV bucket: what the autoscaler
 * multiplies the backlog by. System's run recorder writes a sample when a run finishes
 * (`recordTaskTime`); the autoscaler reads the bucket and asks `poolMeanTaskMs` for a pool's figure.
 */
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { type TaskStat, TaskStat as TaskStatSchema, token } from '@ppc/proto';
import { TypeCompiler } from '@sinclair/typebox/compiler';

/** Weight of a new sample in the exponentially weighted mean: about the last ten tasks count. */
export const SAMPLE_WEIGHT = 0.2;
/** A sample counts half as much towards a pool's mix of task types after this long. */
export const WEIGHT_HALF_LIFE_MS = 60 * 60 * 1000;
/** The task type of URL checks, which have no report type. */
export const URLCHECK_TASK_TYPE = 'urlcheck';

const checkStat = TypeCompiler.Compile(TaskStatSchema);

/** `<pool>.<taskType>`; both are single subject tokens, so the key is exactly two tokens. */
export function taskStatKey(pool: string, taskType: string): string {
  return `${token('pool', pool)}.${token('taskType', taskType)}`;
}

/** Parses a stored value; null for one that does not match the schema (written by something else). */
export function parseTaskStat(value: unknown): TaskStat | null {
  return checkStat.Check(value) ? value : null;
}

export interface TaskTimeSample {
  /** `report-worker-<region>` or `url-checker-<region>` (see `pools` in proto). */
  pool: string;
  /** The report type, or `urlcheck`. */
  taskType: string;
  /** Wall time of the run, started → finished. */
  durationMs: number;
  /** When the run finished; default now. */
  at?: Date;
}

/** The weight a stat had at `updatedAt`, decayed to `now`. */
export function weightAt(stat: TaskStat, now: number): number {
  const age = Math.max(0, now - Date.parse(stat.updatedAt));
  return stat.weight * 2 ** (-age / WEIGHT_HALF_LIFE_MS);
}

/** The stat after one more sample (pure; `recordTaskTime` stores it). */
export function addSample(prev: TaskStat | null, s: TaskTimeSample): TaskStat {
  const at = s.at ?? new Date();
  const duration = Math.max(0, s.durationMs);
  if (!prev) {
    return { pool: s.pool, taskType: s.taskType, meanMs: duration, weight: 1, samples: 1, updatedAt: at.toISOString() };
  }
  // A sample older than the stored one still counts, but does not move the clock backwards.
  const newer = at.getTime() >= Date.parse(prev.updatedAt);
  return {
    pool: s.pool,
    taskType: s.taskType,
    meanMs: prev.meanMs + SAMPLE_WEIGHT * (duration - prev.meanMs),
    weight: (newer ? weightAt(prev, at.getTime()) : prev.weight) + 1,
    samples: prev.samples + 1,
    updatedAt: newer ? at.toISOString() : prev.updatedAt,
  };
}

const isWrongRevision = (err: unknown) =>
  err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence;

/**
 * Adds one finished task's wall time to its pool and type, compare-and-swap, so recorders running
 * side by side never overwrite each other's samples. Returns the stored stat.
 */
export async function recordTaskTime(kv: KV, sample: TaskTimeSample, maxAttempts = 10): Promise<TaskStat> {
  if (!Number.isFinite(sample.durationMs) || sample.durationMs < 0) {
    throw new RangeError(`durationMs: expected a finite number >= 0, got ${sample.durationMs}`);
  }
  const key = taskStatKey(sample.pool, sample.taskType);
  for (let attempt = 1; ; attempt++) {
    const entry = await kv.get(key);
    const prev = entry?.operation === 'PUT' ? parseTaskStat(safeJson(entry.string())) : null;
    const next = addSample(prev, sample);
    try {
      if (entry) await kv.update(key, JSON.stringify(next), entry.revision);
      else await kv.create(key, JSON.stringify(next));
      return next;
    } catch (err) {
      if (!isWrongRevision(err) || attempt >= maxAttempts) throw err;
    }
  }
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return null;
  }
}

/**
 * A pool's recent mean task time: each task type's mean, weighted by how many of its tasks the pool
 * ran recently, so the figure follows the mix of work the pool actually gets. `fallbackMs` when the
 * pool has no (recent) stats.
 */
export function poolMeanTaskMs(stats: Iterable<TaskStat>, pool: string, now: number, fallbackMs: number): number {
  let weighted = 0;
  let total = 0;
  for (const s of stats) {
    if (s.pool !== pool) continue;
    const w = weightAt(s, now);
    weighted += w * s.meanMs;
    total += w;
  }
  // To the microsecond: w·m/w is not always exactly m in floating point.
  return total > 0 ? Math.round((weighted / total) * 1000) / 1000 : fallbackMs;
}
