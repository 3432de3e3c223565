// Child process of `npm run bench -- report`: one timed run over the recorded batches, in a fresh process so its
// peak RSS (VmHWM, threads included) is its own. `pool` runs the report as the worker does (runReportFrom: piscina
// threads, bounded tasks in flight, partials merged on the main thread); `baseline` is a plain loop in this one
// thread: the same map, merge and finalize, no pool, no transfers.
//
// A worker is a long-lived process: its pool is started and its code compiled by the time a big report comes. So
// each variant first runs the whole report WARM_UP_RUNS times untimed (threads started, modules loaded, hot code
// optimised in every thread and on the main thread); otherwise a one-second measurement would mostly time V8's
// compilers, which also run on background threads that compete with the pool's threads for the two cores.
import { validateReportParams } from '@ppc/proto';
import { BatchSlots, ReportPool, runReportFrom } from '../../../services/report-worker/src/processing/index.ts';
import { openBatch, type SearchTermsPartial, searchTerms } from '../../../services/report-worker/src/reports/index.ts';
import { readBatches } from './batch-file.ts';
import {
  digest,
  PARAMS,
  REPORT,
  ROWS_PER_TASK,
  TODAY,
  type VariantJob,
  type VariantResult,
  vmHwmMb,
} from './common.ts';

const WARM_UP_RUNS = 2;

/** The report in a plain loop: one batch read into one reused slot, mapped and merged, then the next. */
function plainLoop(path: string) {
  return (async () => {
    const plan = searchTerms.plan(validateReportParams('search-terms', PARAMS), { today: TODAY });
    const slot = new BatchSlots(1);
    let acc: SearchTermsPartial = searchTerms.empty(plan);
    let rows = 0;
    let tasks = 0;
    for await (const batch of readBatches(path, slot.alloc)) {
      rows += batch.rows;
      tasks += 1;
      acc = searchTerms.merge(acc, searchTerms.map(openBatch(batch), 'terms', plan), plan);
      slot.release(batch.buffer);
    }
    return { rows, tasks, sheets: searchTerms.finalize(acc, plan) };
  })();
}

async function baseline(job: VariantJob): Promise<VariantResult> {
  for (let i = 0; i < WARM_UP_RUNS; i++) await plainLoop(job.path);
  const rssBefore = process.memoryUsage.rss();
  const cpu = process.threadCpuUsage();
  const started = performance.now();
  const { rows, tasks, sheets } = await plainLoop(job.path);
  const seconds = (performance.now() - started) / 1000;
  const used = process.threadCpuUsage(cpu);
  return {
    mainCpuSeconds: (used.user + used.system) / 1e6,
    threadsCpuSeconds: 0,
    rows,
    seconds,
    vmHwmMb: vmHwmMb(),
    rssBeforeMb: rssBefore / 1048576,
    digest: digest(sheets),
    tasks,
    maxTasksInFlight: 1,
  };
}

async function pooled(job: VariantJob): Promise<VariantResult> {
  const pool = new ReportPool({ threads: job.threads });
  const options = { pool, today: TODAY, rowsPerTask: ROWS_PER_TASK };
  try {
    await pool.warm();
    for (let i = 0; i < WARM_UP_RUNS; i++) {
      await runReportFrom(REPORT, PARAMS, (_q, _s, alloc) => readBatches(job.path, alloc), options);
    }
    const rssBefore = process.memoryUsage.rss();
    const started = performance.now();
    const result = await runReportFrom(REPORT, PARAMS, (_q, _s, alloc) => readBatches(job.path, alloc), options);
    const seconds = (performance.now() - started) / 1000;
    return {
      mainCpuSeconds: result.stats.cpu.mainMs / 1000,
      threadsCpuSeconds: result.stats.cpu.threadsMs / 1000,
      rows: Object.values(result.stats.rows).reduce((a, b) => a + b, 0),
      seconds,
      vmHwmMb: vmHwmMb(),
      rssBeforeMb: rssBefore / 1048576,
      digest: digest(result.sheets),
      tasks: result.stats.tasks,
      maxTasksInFlight: result.stats.maxTasksInFlight,
    };
  } finally {
    await pool.close();
  }
}

process.once('message', (job) => {
  const j = job as VariantJob;
  (j.mode === 'baseline' ? baseline(j) : pooled(j)).then(
    (result) => process.send?.({ result }, () => process.exit(0)),
    (err: unknown) => process.send?.({ error: String((err as Error)?.stack ?? err) }, () => process.exit(1)),
  );
});
