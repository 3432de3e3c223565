import { envVar } from '@ppc/lib/config';
import { openRunConnection, sheetsAccessFor } from '@ppc/lib/credentials';
import { openArtifactStore, writeReport } from '@ppc/lib/outputs';
import { consumeRunTasks } from '@ppc/lib/runs';
import { baseEnv, idleEnv, main, regionEnv, type ServiceDefinition } from '@ppc/lib/service';
import { consumers, objectStores, ReportTaskMsg, reportTypes, streams } from '@ppc/proto';
import { Type } from '@sinclair/typebox';
import { ReportPool, runReport, todayIn } from './processing/index.ts';

const env = {
  ...baseEnv({ port: 9101 }),
  ...regionEnv,
  ...idleEnv,
  concurrency: envVar({
    env: 'PPC_REPORT_CONCURRENCY',
    schema: Type.Integer({ minimum: 1, maximum: 32 }),
    default: 2,
    doc: 'report tasks this instance runs at once (their rows share one thread pool)',
  }),
  threads: envVar({
    env: 'PPC_REPORT_THREADS',
    schema: Type.Integer({ minimum: 0, maximum: 64 }),
    default: 0,
    doc: 'processing threads; 0 = one per core',
  }),
};

/** Report time limit: the type's own, else an hour. */
const timeLimitOf = (type: string) =>
  (reportTypes as Record<string, { timeLimitMs?: number } | undefined>)[type]?.timeLimitMs ?? 3_600_000;

/**
 * Builds reports: pulls report tasks of its region, streams the account's rows through the connector (tokens from
 * the credential broker) into a pool of processing threads, writes each sheet to the job's output and publishes the
 * run's lifecycle events.
 */
export const reportWorker: ServiceDefinition<typeof env> = {
  name: 'report-worker',
  env,
  resources: (config) => ({
    streams: [streams.reportTasks, streams.events],
    consumers: [consumers.reportWorker(config.region)],
    objectStores: [objectStores.artifacts],
  }),
  async start(ctx) {
    const objectStore = await openArtifactStore(ctx.nc);
    const pool = new ReportPool(ctx.config.threads > 0 ? { threads: ctx.config.threads } : {});
    await pool.warm();
    ctx.onStop(() => pool.close());
    await consumeRunTasks(
      ctx,
      consumers.reportWorker(ctx.region),
      ReportTaskMsg,
      { concurrency: ctx.config.concurrency, timeLimitMs: (task) => timeLimitOf(task.reportType) },
      async (task, { signal, progress }) => {
        const started = performance.now();
        const { connector, account, timeZone, currency } = await openRunConnection(ctx.nc, task, { signal });
        try {
          const report = await runReport(task.reportType, task.params, {
            connector,
            account,
            pool,
            today: todayIn(timeZone),
            signal,
            onProgress: (p) =>
              progress({
                phase: p.phase === 'fetching' ? 'fetching' : 'processing',
                percent: p.percent,
                rows: p.rowsFetched,
              }),
          });
          const processed = performance.now();
          const written = await writeReport(
            task.output,
            {
              runId: task.runId,
              // Deterministic per task, so a retried run overwrites its own output.
              title: `${(reportTypes as Record<string, { name: string }>)[task.reportType]?.name ?? task.reportType} ${task.enqueuedAt.slice(0, 10)}`,
              currency,
              deps: {
                objectStore,
                ...withGoogle(sheetsAccessFor(ctx.nc, task, signal)),
              },
              signal,
            },
            report.sheets.map((s) => ({ name: s.name, columns: s.columns, rows: [s.rows] })),
            (index, name, rows) =>
              progress({
                phase: 'writing',
                percent: 100,
                rows,
                sheet: { index, count: report.sheets.length, name },
              }),
          );
          return {
            outputs: written.links,
            rows: written.rows,
            timings: {
              fetching: Math.round(report.stats.timings.fetchingMs),
              processing: Math.round(report.stats.timings.processingMs + report.stats.timings.finalizingMs),
              writing: Math.round(performance.now() - processed),
              total: Math.round(performance.now() - started),
            },
          };
        } finally {
          await connector.close();
        }
      },
    );
    return {
      details: () => ({ consumer: consumers.reportWorker(ctx.region).durable, handling: true, pool: pool.stats() }),
    };
  },
};

/** `{ google }` when the output needs Google access (optional properties are omitted, not undefined). */
const withGoogle = <T>(google: T | undefined) => (google ? { google } : {});

if (import.meta.main) main(reportWorker);
