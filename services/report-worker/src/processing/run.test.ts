// runReport / runReportFrom: backpressure, progress, cancellation, the time limit and how failures surface.
// The demo platform runs in this process; the huge account (1,000,000 search-term rows) gives runs that are still
// going when they are cancelled.
import {
  type AccountRef,
  AdsErrorCode,
  type AdPlatformConnector,
  createDemoConnector,
  type DemoPlatform,
  startDemoPlatform,
} from '@ppc/lib/ads';
import { PermanentError, RetryableError } from '@ppc/lib/errors';
import { freePort } from '@ppc/lib/infra';
import { waitFor } from '@ppc/lib/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FieldRow, packFields, table } from '../reports/fixtures.ts';
import { ReportPool } from './pool.ts';
import {
  REPORT_TIME_LIMIT,
  REPORT_TYPE_UNKNOWN,
  type ReportProgress,
  runReport,
  runReportFrom,
  todayIn,
} from './run.ts';
import type { BatchSource } from './source.ts';

const TODAY = '2025-06-15';
let platform: DemoPlatform;
let connector: AdPlatformConnector;
let pool: ReportPool;
let huge: AccountRef;
let tiny: AccountRef;

beforeAll(async () => {
  platform = await startDemoPlatform({ port: await freePort(), seed: 5, today: TODAY });
  connector = createDemoConnector({ url: platform.url });
  const agency = platform.world.byKey.get('agency')!.id;
  huge = { id: platform.world.byKey.get('huge')!.id, loginCustomerId: agency };
  tiny = { id: platform.world.byKey.get('tiny')!.id, loginCustomerId: agency };
  pool = new ReportPool({ threads: 2 });
});

afterAll(async () => {
  await pool?.close();
  await connector?.close();
  await platform?.close();
});

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

function termRows(batch: number, n: number): FieldRow[] {
  return Array.from({ length: n }, (_, i) => ({
    'search_term_view.search_term': `term ${batch} ${i % 50} shoes`,
    'search_term_view.status': 'NONE',
    'campaign.id': '1',
    'campaign.name': 'C',
    'ad_group.id': '2',
    'ad_group.name': 'G',
    'metrics.impressions': 10,
    'metrics.clicks': 1,
    'metrics.cost_micros': 0.5,
    'metrics.conversions': 0,
    'metrics.conversions_value': 0,
  }));
}

describe('running a report', () => {
  it('reads on only when a thread slot is free, so rows never pile up', async () => {
    const maxInFlight = 3;
    const rowsPerBatch = 2000;
    let pulled = 0;
    let merged = 0;
    let mostAhead = 0;
    const source: BatchSource = async function* (spec) {
      for (let b = 0; b < 40; b++) {
        // Every batch handed out so far is either merged or in the pool.
        mostAhead = Math.max(mostAhead, pulled - merged);
        expect(pulled - merged).toBeLessThanOrEqual(maxInFlight);
        pulled += 1;
        yield packFields(spec.query.select, termRows(b, rowsPerBatch));
      }
    };
    const onProgress = (p: ReportProgress) => {
      merged = p.rowsProcessed / rowsPerBatch;
    };
    const result = await runReportFrom('search-terms', {}, source, {
      pool,
      today: TODAY,
      maxInFlight,
      onProgress,
      progressIntervalMs: 0,
    });
    expect(pulled).toBe(40);
    expect(mostAhead).toBe(maxInFlight);
    expect(result.stats).toMatchObject({ tasks: 40, maxTasksInFlight: maxInFlight, rows: { terms: 80_000 } });
    expect(result.stats.maxRowsInFlight).toBe(maxInFlight * rowsPerBatch);
    expect(table(result.sheets, 'Summary')[0]!.terms).toBe(80_000);
    expect(table(result.sheets, '1-grams')[0]).toMatchObject({ ngram: 'shoes', terms: 80_000, cost: 40_000 });
  });

  it('reports its phases in order, throttled, and its timings', async () => {
    const seen: ReportProgress[] = [];
    const result = await runReport(
      'search-terms',
      {},
      {
        connector,
        account: tiny,
        pool,
        today: TODAY,
        onProgress: (p) => seen.push(p),
        progressIntervalMs: 60_000,
      },
    );
    expect(seen.map((p) => p.phase)).toEqual(['fetching', 'processing', 'finalizing']);
    expect(seen.map((p) => p.percent)).toEqual([0, 50, 99]);
    expect(seen[2]).toMatchObject({ rowsFetched: 60, rowsProcessed: 60, query: { index: 1, count: 1, id: 'terms' } });
    expect(result.stats.rows).toEqual({ terms: 60 });
    const t = result.stats.timings;
    expect(t.totalMs).toBeGreaterThanOrEqual(t.processingMs);
    expect(t.processingMs).toBeGreaterThanOrEqual(t.fetchingMs);
    expect(result.params).toMatchObject({ period: 'last_30_days', minCost: 10 });
  });

  it('stops fetching and processing within two seconds of a cancel, and the pool carries on', async () => {
    const cancel = new AbortController();
    const reason = new Error('cancelled by the user');
    let cancelledAt = 0;
    let rowsAtCancel = 0;
    const running = runReport(
      'search-terms',
      {},
      {
        connector,
        account: huge,
        pool,
        today: TODAY,
        signal: cancel.signal,
        progressIntervalMs: 0,
        onProgress: (p) => {
          if (p.rowsProcessed > 0 && !cancelledAt) {
            cancelledAt = performance.now();
            rowsAtCancel = p.rowsFetched;
            cancel.abort(reason);
          }
        },
      },
    );
    expect(await rejection(running)).toBe(reason);
    expect(performance.now() - cancelledAt).toBeLessThan(2000);
    expect(rowsAtCancel).toBeLessThan(1_000_000);
    const after = await runReport('search-terms', {}, { connector, account: tiny, pool, today: TODAY });
    expect(table(after.sheets, 'Summary')[0]!.terms).toBe(60);
  });

  it('does not wait for a source that ignores the cancel', async () => {
    const cancel = new AbortController();
    let asked = false;
    const stuck: BatchSource = async function* () {
      asked = true;
      await new Promise(() => {});
    };
    const running = rejection(runReportFrom('search-terms', {}, stuck, { pool, today: TODAY, signal: cancel.signal }));
    await waitFor(() => asked, { what: 'the run to ask its source for rows' });
    const reason = new Error('stop');
    cancel.abort(reason);
    expect(await running).toBe(reason);
  });

  it('gives up with a retryable error when the type’s time limit passes', async () => {
    const started = performance.now();
    const err = await rejection(
      runReport('search-terms', {}, { connector, account: huge, pool, today: TODAY, timeLimitMs: 300 }),
    );
    expect(err).toBeInstanceOf(RetryableError);
    expect(err).toMatchObject({ code: REPORT_TIME_LIMIT });
    expect((err as Error).message).toMatch(/search-terms exceeded its time limit/);
    expect(performance.now() - started).toBeLessThan(2300);
  });

  it('fails permanently, naming the field, on bad parameters, and on an unknown type', async () => {
    const bad = await rejection(
      runReport('search-terms', { minClicks: -3 }, { connector, account: tiny, pool, today: TODAY }),
    );
    expect(bad).toBeInstanceOf(PermanentError);
    expect(bad).toMatchObject({ code: 'REPORT_PARAMS_INVALID' });
    expect((bad as Error).message).toMatch(/\/minClicks/);
    const unknown = await rejection(runReport('roi-magic', {}, { connector, account: tiny, pool, today: TODAY }));
    expect(unknown).toBeInstanceOf(PermanentError);
    expect(unknown).toMatchObject({ code: REPORT_TYPE_UNKNOWN });
  });

  it('passes the platform’s typed error through: revoked credentials fail, not retried', async () => {
    const revoked = createDemoConnector({ url: platform.url, refreshToken: 'revoked' });
    try {
      const err = await rejection(
        runReport('anomalies', {}, { connector: revoked, account: tiny, pool, today: TODAY }),
      );
      expect(err).toBeInstanceOf(PermanentError);
      expect(err).toMatchObject({ code: AdsErrorCode.Auth });
    } finally {
      await revoked.close();
    }
  });

  it('knows the calendar day in the account’s time zone', () => {
    const at = new Date('2025-06-14T20:00:00Z');
    expect(todayIn('Asia/Tokyo', at)).toBe('2025-06-15');
    expect(todayIn('America/Los_Angeles', at)).toBe('2025-06-14');
    expect(todayIn('UTC', new Date('2024-02-29T23:59:59Z'))).toBe('2024-02-29');
  });
});
