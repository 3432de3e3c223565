/**
 * The piscina thread: runs a report's `map` on one packed batch and replies with the partial aggregate (or the typed
 * error, see boundary.ts). Loaded once per thread; holds no state between tasks.
 */
import type { ReportTypeId } from '@ppc/proto';
import { openBatch, type PackedBatch, reportDefinition } from '../reports/index.ts';
import { guarded, type ThreadReply } from './boundary.ts';

export interface MapTask {
  kind: 'map';
  report: ReportTypeId;
  queryId: string;
  plan: unknown;
  batch: PackedBatch;
}

/**
 * Makes every thread load this module before the first real task: each ping waits (up to `timeoutMs`) until all
 * `expected` pings have arrived, so no thread can take two of them.
 */
export interface PingTask {
  kind: 'ping';
  arrived: SharedArrayBuffer;
  expected: number;
  timeoutMs: number;
}

export type ThreadTask = MapTask | PingTask;

export default function handle(task: ThreadTask): Promise<ThreadReply<unknown>> {
  return guarded(() => {
    if (task.kind === 'ping') return ping(task);
    const def = reportDefinition(task.report);
    return def.map(openBatch(task.batch), task.queryId, task.plan);
  });
}

function ping(task: PingTask): number {
  const arrived = new Int32Array(task.arrived);
  Atomics.add(arrived, 0, 1);
  Atomics.notify(arrived, 0);
  const deadline = Date.now() + task.timeoutMs;
  for (;;) {
    const n = Atomics.load(arrived, 0);
    if (n >= task.expected || Date.now() >= deadline) return n;
    Atomics.wait(arrived, 0, n, Math.max(1, deadline - Date.now()));
  }
}
