// A 1,000,000-row search-terms report through the pool, from the demo platform's huge account over HTTP (the demo
// server in its own process, fixtures/demo-server.ts). What it proves: the run holds a bounded number of rows
// whatever the row count — checked from outside, at the connector, not only from the run's own statistics — and
// every row is counted once.
import { fork } from 'node:child_process';
import type { AccountRef, AdPlatformConnector, CallOptions, ReportQuery, RowBatch } from '@ppc/lib/ads';
import { createDemoConnector } from '@ppc/lib/ads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { table } from '../reports/fixtures.ts';
import { ReportPool } from './pool.ts';
import { DEFAULT_ROWS_PER_TASK, runReport } from './run.ts';

const server = fork(new URL('./fixtures/demo-server.ts', import.meta.url), [], {
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
});
let where: { url: string; huge: string; agency: string };
let connector: AdPlatformConnector;
let pool: ReportPool;
const CONNECTOR_BATCH_ROWS = 1000;

beforeAll(async () => {
  where = await new Promise((resolve, reject) => {
    server.once('message', (m) => resolve(m as typeof where));
    server.once('exit', (code) => reject(new Error(`demo server exited (${code})`)));
  });
  connector = createDemoConnector({ url: where.url, batchRows: CONNECTOR_BATCH_ROWS });
  pool = new ReportPool({ threads: 2 });
});

afterAll(async () => {
  await pool?.close();
  await connector?.close();
  if (server.connected) server.disconnect();
  await new Promise((r) => (server.exitCode === null ? server.once('exit', r) : r(null)));
});

describe('a million-row report', () => {
  it('runs through the pool with a bounded number of rows in memory and counts every row once', async () => {
    const maxInFlight = 3;
    let read = 0;
    let clicks = 0;
    let costMicros = 0;
    let processed = 0;
    let mostHeld = 0;
    // The real connector, watched: every row it hands out is either merged or held by the run.
    const tapped: Pick<AdPlatformConnector, 'streamReport'> = {
      async *streamReport(account: AccountRef, query: ReportQuery, opts?: CallOptions): AsyncGenerator<RowBatch> {
        const c = query.select.indexOf('metrics.clicks');
        const m = query.select.indexOf('metrics.cost_micros');
        for await (const batch of connector.streamReport(account, query, opts)) {
          read += batch.rows.length;
          for (const row of batch.rows) {
            clicks += row[c] as number;
            costMicros += Math.round((row[m] as number) * 1e6);
          }
          mostHeld = Math.max(mostHeld, read - processed);
          yield batch;
        }
      },
    };
    const result = await runReport(
      'search-terms',
      {},
      {
        connector: tapped,
        account: { id: where.huge, loginCustomerId: where.agency },
        pool,
        today: '2025-06-15',
        maxInFlight,
        progressIntervalMs: 0,
        onProgress: (p) => {
          processed = p.rowsProcessed;
        },
      },
    );

    expect(read).toBe(1_000_000);
    expect(result.stats.rows).toEqual({ terms: 1_000_000 });
    const [summary] = table(result.sheets, 'Summary');
    expect(summary).toMatchObject({ terms: 1_000_000, clicks });
    expect(Math.round((summary!.cost as number) * 1e6)).toBe(costMicros);
    expect(table(result.sheets, '1-grams').length).toBeGreaterThan(10);

    // Held at once: the tasks in the pool, the one being packed and the connector's batch in hand — never the
    // million rows.
    const bound = (maxInFlight + 1) * DEFAULT_ROWS_PER_TASK + CONNECTOR_BATCH_ROWS;
    expect(mostHeld).toBeLessThanOrEqual(bound);
    expect(result.stats.maxTasksInFlight).toBeLessThanOrEqual(maxInFlight);
    expect(result.stats.maxRowsInFlight).toBeLessThanOrEqual(maxInFlight * DEFAULT_ROWS_PER_TASK);
    expect(result.stats.tasks).toBe(Math.ceil(1_000_000 / DEFAULT_ROWS_PER_TASK));
  }, 240_000);
});
