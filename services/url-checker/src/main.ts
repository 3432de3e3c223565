import { envVar } from '@ppc/lib/config';
import { openRunConnection, sheetsAccessFor } from '@ppc/lib/credentials';
import { openArtifactStore, writeReport } from '@ppc/lib/outputs';
import { consumeRunTasks } from '@ppc/lib/runs';
import { baseEnv, idleEnv, main, regionEnv, type ServiceDefinition } from '@ppc/lib/service';
import { consumers, objectStores, streams, UrlCheckTaskMsg } from '@ppc/proto';
import { Type } from '@sinclair/typebox';
import { runUrlCheck } from './run.ts';

const env = {
  ...baseEnv({ port: 9102 }),
  ...regionEnv,
  ...idleEnv,
  concurrency: envVar({
    env: 'PPC_URLCHECK_CONCURRENCY',
    schema: Type.Integer({ minimum: 1, maximum: 32 }),
    default: 2,
    doc: 'URL-check tasks this instance runs at once (each checks many URLs concurrently)',
  }),
  timeLimitMs: envVar({
    env: 'PPC_URLCHECK_TIME_LIMIT_MS',
    schema: Type.Integer({ minimum: 10_000, maximum: 24 * 3_600_000 }),
    default: 3_600_000,
    doc: 'the longest one URL check may run before it is failed',
  }),
};

/**
 * Takes URL-check tasks of its region: collects every landing-page URL of the account through the connector (tokens
 * from the credential broker), checks each politely, writes the report to the job's output and publishes the run's
 * lifecycle events.
 */
export const urlChecker: ServiceDefinition<typeof env> = {
  name: 'url-checker',
  env,
  resources: (config) => ({
    streams: [streams.urlCheckTasks, streams.events],
    consumers: [consumers.urlChecker(config.region)],
    objectStores: [objectStores.artifacts],
  }),
  async start(ctx) {
    const objectStore = await openArtifactStore(ctx.nc);
    await consumeRunTasks(
      ctx,
      consumers.urlChecker(ctx.region),
      UrlCheckTaskMsg,
      { concurrency: ctx.config.concurrency, timeLimitMs: () => ctx.config.timeLimitMs },
      async (task, { signal, progress }) => {
        const started = performance.now();
        const { connector, account } = await openRunConnection(ctx.nc, task, { signal });
        try {
          const { sheets, stats } = await runUrlCheck(task, {
            connector,
            account,
            signal,
            onProgress: (p) =>
              progress({
                phase: p.phase === 'collecting' ? 'fetching' : 'processing',
                percent: p.percent,
                rows: p.phase === 'collecting' ? p.uses : p.checked,
              }),
          });
          const checked = performance.now();
          const written = await writeReport(
            task.output,
            {
              runId: task.runId,
              // Deterministic per task, so a retried run overwrites its own files.
              title: `URL check ${task.enqueuedAt.slice(0, 10)}`,
              deps: {
                objectStore,
                ...withGoogle(sheetsAccessFor(ctx.nc, task, signal)),
              },
              signal,
            },
            sheets,
            (index, name, rows) =>
              progress({
                phase: 'writing',
                percent: 100,
                rows,
                sheet: { index, count: sheets.length, name },
              }),
          );
          return {
            outputs: written.links,
            rows: written.rows,
            timings: {
              collecting: stats.collectMs,
              checking: stats.checkMs,
              writing: Math.round(performance.now() - checked),
              total: Math.round(performance.now() - started),
            },
          };
        } finally {
          await connector.close();
        }
      },
    );
    return { details: () => ({ consumer: consumers.urlChecker(ctx.region).durable, handling: true }) };
  },
};

/** `{ google }` when the output needs Google access (optional properties are omitted, not undefined). */
const withGoogle = <T>(google: T | undefined) => (google ? { google } : {});

if (import.meta.main) main(urlChecker);
