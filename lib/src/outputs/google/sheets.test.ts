/**
 * The Google Sheets output against a local HTTP server that is a STAND-IN FOR GOOGLE SHEETS v4 AND DRIVE v3
 * (`stand-in.ts`): it answers the documented REST shapes (Drive files create/list with appProperties queries,
 * spreadsheets get, batchUpdate, values.update, Google's JSON errors, Retry-After) and keeps spreadsheets in memory.
 * The client under test is the real one: googleapis' Sheets and Drive surfaces pointed at it with `rootUrl`.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PermanentError, RetryableError } from '../../errors/index.ts';
import { uniqueName, waitFor } from '../../testing/index.ts';
import { openOutput } from '../open.ts';
import type { OpenOutputOptions, OutputColumn, RetryPolicy } from '../types.ts';
import { googleErrorBody, type SheetsStandIn, type StandInRequest, startSheetsStandIn } from './stand-in.ts';

let google: SheetsStandIn;
let tokensIssued = 0;
beforeEach(async () => {
  google = await startSheetsStandIn();
});
afterEach(async () => {
  await google.stop();
});

const fastRetry: Partial<RetryPolicy> = { initialDelayMs: 5, maxDelayMs: 20, maxAttempts: 4 };

function options(over: Partial<OpenOutputOptions> = {}): OpenOutputOptions {
  return {
    runId: uniqueName('run').toLowerCase(),
    title: 'Account performance',
    deps: {
      google: {
        accessToken: async () => {
          tokensIssued += 1;
          return `token-${tokensIssued}`;
        },
        rootUrl: google.url,
      },
    },
    sheets: { retry: fastRetry },
    ...over,
  };
}

const columns: OutputColumn[] = [
  { key: 'campaign', header: 'Campaign', type: 'string' },
  { key: 'clicks', header: 'Clicks', type: 'integer' },
  { key: 'cost', header: 'Cost', type: 'money' },
  { key: 'ctr', header: 'CTR', type: 'percent' },
  { key: 'day', header: 'Day', type: 'date' },
  { key: 'url', header: 'Landing page', type: 'url' },
  { key: 'limited', header: 'Limited', type: 'boolean' },
];

const serial = (y: number, m: number, d: number) => (Date.UTC(y, m - 1, d) - Date.UTC(1899, 11, 30)) / 86_400_000;
const isValuesWrite = (r: StandInRequest) => r.method === 'PUT' && r.path.includes('/values/');
const rangeOf = (r: StandInRequest) => decodeURIComponent(r.path.split('/values/')[1]!);
/** First and last sheet row of a values write. */
function rowsOf(r: StandInRequest): [number, number] {
  const m = /!A(\d+):[A-Z]+(\d+)$/.exec(rangeOf(r))!;
  return [Number(m[1]), Number(m[2])];
}

function onlySpreadsheet() {
  const all = [...google.spreadsheets.values()];
  expect(all).toHaveLength(1);
  return all[0]!;
}

describe('Google Sheets output', () => {
  it('creates the run spreadsheet in the folder: a tab per sheet, bold frozen header, typed values, formats', async () => {
    google.folders.add('folder-1');
    const opts = options({ currency: 'EUR' });
    const out = await openOutput({ kind: 'sheets', folderId: 'folder-1' }, opts);
    const byDay = await out.addSheet({ name: 'By day', columns });
    await byDay.append([
      ['Brand', 120, 45.5, 0.0423, '2025-03-01', 'https://shop.example/a', false],
      ['=SUM(A1:A9)', 0, 0, null, new Date('2025-03-02T10:00:00Z'), null, true],
    ]);
    await byDay.close();
    const totals = await out.addSheet({ name: "Owner's totals", columns: columns.slice(0, 3), currency: 'JPY' });
    await totals.append([['All', 120, 1500]]);
    const links = await out.finish();

    const ss = onlySpreadsheet();
    expect(links).toEqual([
      { kind: 'sheets', name: 'Account performance', url: `https://docs.google.com/spreadsheets/d/${ss.id}/edit` },
    ]);
    expect(ss.title).toBe('Account performance');
    expect(ss.appProperties).toEqual({ ppcRunId: opts.runId });
    expect(ss.parents).toEqual(['folder-1']);
    // The default Sheet1 of the new spreadsheet is gone; only the report's tabs remain.
    expect(ss.tabs.map((t) => t.title)).toEqual(['By day', "Owner's totals"]);

    expect(google.values(ss.id, 'By day')).toEqual([
      columns.map((c) => c.header),
      ['Brand', 120, 45.5, 0.0423, serial(2025, 3, 1), 'https://shop.example/a', false],
      // RAW: text that looks like a formula stays text.
      ['=SUM(A1:A9)', 0, 0, '', serial(2025, 3, 2), '', true],
    ]);
    expect(google.values(ss.id, "Owner's totals")).toEqual([
      ['Campaign', 'Clicks', 'Cost'],
      ['All', 120, 1500],
    ]);

    const tab = google.tab(ss.id, 'By day')!;
    expect(tab).toMatchObject({ frozenRowCount: 1, rowCount: 3, columnCount: 7, autoResized: true });
    const header = tab.formats.find((f) => f.range.startRowIndex === 0 && f.range.endRowIndex === 1)!;
    expect(header.cell).toMatchObject({ userEnteredFormat: { textFormat: { bold: true } } });
    const formatOf = (t: typeof tab, column: number) =>
      t.formats.find((f) => f.range.startColumnIndex === column && f.range.startRowIndex === 1);
    expect(formatOf(tab, 0)).toBeUndefined();
    expect(formatOf(tab, 1)?.cell).toEqual({
      userEnteredFormat: { numberFormat: { type: 'NUMBER', pattern: '#,##0' } },
    });
    expect(formatOf(tab, 2)?.cell).toEqual({
      userEnteredFormat: { numberFormat: { type: 'CURRENCY', pattern: '[$€]#,##0.00' } },
    });
    expect(formatOf(tab, 3)?.cell).toEqual({
      userEnteredFormat: { numberFormat: { type: 'PERCENT', pattern: '0.00%' } },
    });
    expect(formatOf(tab, 4)?.cell).toEqual({
      userEnteredFormat: { numberFormat: { type: 'DATE', pattern: 'yyyy-mm-dd' } },
    });
    expect(formatOf(tab, 2)?.range).toMatchObject({ startRowIndex: 1, endRowIndex: 3 });
    expect(formatOf(google.tab(ss.id, "Owner's totals")!, 2)?.cell).toEqual({
      userEnteredFormat: { numberFormat: { type: 'CURRENCY', pattern: '[$¥]#,##0' } },
    });

    const writes = google.requests.filter(isValuesWrite);
    expect(writes.every((r) => r.query.get('valueInputOption') === 'RAW')).toBe(true);
    expect(writes.map(rangeOf)).toEqual(["'By day'!A1:G3", "'Owner''s totals'!A1:C2"]);
    expect(google.requests.every((r) => /^Bearer token-\d+$/.test(String(r.headers.authorization)))).toBe(true);
    expect(google.requests.every((r) => r.status === 200)).toBe(true);
  });

  it('writes values in chunks within the request limits, each row once, growing the grid as it goes', async () => {
    const limits = { maxRowsPerRequest: 50, maxBytesPerRequest: 4096 };
    const out = await openOutput({ kind: 'sheets' }, options({ sheets: { retry: fastRetry, limits } }));
    const s = await out.addSheet({ name: 'Terms', columns: columns.slice(0, 2) });
    const rows = Array.from({ length: 1000 }, (_, i) => [`term ${i} ${'x'.repeat((i * 37) % 300)}`, i]);
    for (let i = 0; i < rows.length; i += 130) await s.append(rows.slice(i, i + 130));
    await out.finish();

    const ss = onlySpreadsheet();
    expect(google.values(ss.id, 'Terms')).toEqual([['Campaign', 'Clicks'], ...rows]);
    const writes = google.requests.filter(isValuesWrite);
    for (const w of writes) {
      expect(Buffer.byteLength(w.body)).toBeLessThanOrEqual(limits.maxBytesPerRequest);
      const [first, last] = rowsOf(w);
      expect(last - first + 1).toBeLessThanOrEqual(limits.maxRowsPerRequest);
    }
    // Consecutive, non-overlapping ranges covering header and rows exactly.
    const spans = writes.map(rowsOf);
    expect(spans[0]![0]).toBe(1);
    for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBe(spans[i - 1]![1] + 1);
    expect(spans.at(-1)![1]).toBe(1001);
    expect(google.tab(ss.id, 'Terms')!.rowCount).toBe(1001);
    expect(google.requests.every((r) => r.status === 200)).toBe(true);
  });

  it('waits out a 429 with Retry-After, then completes the output with no row written twice', async () => {
    let writes = 0;
    google.failNext((r) => isValuesWrite(r) && ++writes === 3, {
      status: 429,
      headers: { 'retry-after': '1' },
      body: googleErrorBody(
        429,
        "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per minute per user' of service 'sheets.googleapis.com'.",
      ),
    });
    const limits = { maxRowsPerRequest: 100 };
    const out = await openOutput({ kind: 'sheets' }, options({ sheets: { retry: fastRetry, limits } }));
    const s = await out.addSheet({ name: 'Terms', columns: columns.slice(0, 2) });
    const rows = Array.from({ length: 450 }, (_, i) => [`term ${i}`, i]);
    await s.append(rows);
    await out.finish();

    const ss = onlySpreadsheet();
    expect(google.values(ss.id, 'Terms')).toEqual([['Campaign', 'Clicks'], ...rows]);
    const all = google.requests.filter(isValuesWrite);
    const refused = all.findIndex((r) => r.status === 429);
    expect(refused).toBe(2);
    const retry = all[refused + 1]!;
    expect(rangeOf(retry)).toBe(rangeOf(all[refused]!));
    expect(retry.at - all[refused]!.at).toBeGreaterThanOrEqual(1000);
    expect(all.filter((r) => r.status === 200)).toHaveLength(5);
  });

  it('retries 5xx and lost answers without duplicating anything, and asks for a fresh token after a 401', async () => {
    google.failNext((r) => r.path.endsWith(':batchUpdate'), { status: 503 }, 2);
    google.failNext((r) => r.method === 'POST' && r.path === '/drive/v3/files', { status: 500, applied: true });
    google.failNext((r) => r.path.endsWith(':batchUpdate') && r.body.includes('addSheet'), {
      status: 502,
      applied: true,
    });
    google.failNext(isValuesWrite, { status: 401 });
    const out = await openOutput({ kind: 'sheets' }, options());
    const s = await out.addSheet({ name: 'Terms', columns: columns.slice(0, 2) });
    await s.append([['a', 1]]);
    await out.finish();

    // The create whose answer was lost is found again (Drive appProperties), not repeated; the addSheet whose
    // answer was lost is refused on retry ("already exists") and the tab it made is reused.
    const ss = onlySpreadsheet();
    expect(google.requests.filter((r) => r.status === 400).map((r) => r.path)).toEqual([
      `/v4/spreadsheets/${ss.id}:batchUpdate`,
    ]);
    expect(ss.tabs.map((t) => t.title)).toEqual(['Terms']);
    expect(google.values(ss.id, 'Terms')).toEqual([
      ['Campaign', 'Clicks'],
      ['a', 1],
    ]);
    const writes = google.requests.filter(isValuesWrite);
    expect(writes.map((r) => r.status)).toEqual([401, 200]);
    expect(writes[0]!.headers.authorization).not.toBe(writes[1]!.headers.authorization);
  });

  it('a retried run rewrites the spreadsheet its earlier attempt created, keeping tab ids', async () => {
    const opts = options();
    const first = await openOutput({ kind: 'sheets' }, opts);
    const terms1 = await first.addSheet({ name: 'Terms', columns: columns.slice(0, 2) });
    await terms1.append(Array.from({ length: 30 }, (_, i) => [`first ${i}`, i]));
    await terms1.close();
    await first.addSheet({ name: 'Dropped later', columns: columns.slice(0, 1) });
    await first.abort(new Error('worker killed'));
    const ss = onlySpreadsheet();
    const termsId = google.tab(ss.id, 'Terms')!.sheetId;

    const createsBefore = google.requests.filter((r) => r.method === 'POST' && r.path === '/drive/v3/files').length;
    const second = await openOutput({ kind: 'sheets' }, { ...opts, deps: opts.deps });
    const terms2 = await second.addSheet({ name: 'Terms', columns: columns.slice(0, 2) });
    await terms2.append([['second', 1]]);
    await terms2.close();
    const totals = await second.addSheet({ name: 'Totals', columns: columns.slice(0, 1) });
    await totals.append([['all']]);
    const links = await second.finish();

    expect(onlySpreadsheet().id).toBe(ss.id);
    expect(google.requests.filter((r) => r.method === 'POST' && r.path === '/drive/v3/files')).toHaveLength(
      createsBefore,
    );
    expect(links[0]!.url).toContain(ss.id);
    expect(ss.tabs.map((t) => t.title)).toEqual(['Terms', 'Totals']);
    expect(google.tab(ss.id, 'Terms')!.sheetId).toBe(termsId);
    expect(google.values(ss.id, 'Terms')).toEqual([
      ['Campaign', 'Clicks'],
      ['second', 1],
    ]);
  });

  it("writes into the job's own spreadsheet: clears and reuses a tab of the same name, keeps the others", async () => {
    const own = google.addSpreadsheet('Client dashboard', ['Notes', 'terms']);
    const old = google.tab(own.id, 'terms')!;
    old.cells.set(0, ['stale header']);
    old.cells.set(500, ['stale row']);
    old.formats.push({ range: { sheetId: old.sheetId }, cell: { note: 'old' }, fields: 'note' });
    google.tab(own.id, 'Notes')!.cells.set(0, ['keep me']);

    const out = await openOutput({ kind: 'sheets', spreadsheetId: own.id }, options());
    const s = await out.addSheet({ name: 'Terms', columns: columns.slice(0, 2) });
    await s.append([['fresh', 1]]);
    await out.finish();

    expect(google.requests.some((r) => r.path.startsWith('/drive/'))).toBe(false);
    expect(own.tabs.map((t) => t.title)).toEqual(['Notes', 'Terms']);
    expect(google.values(own.id, 'Notes')).toEqual([['keep me']]);
    expect(google.values(own.id, 'Terms')).toEqual([
      ['Campaign', 'Clicks'],
      ['fresh', 1],
    ]);
    expect(google.tab(own.id, 'Terms')!.formats.some((f) => f.fields === 'note')).toBe(false);
  });

  it('turns refusals into permanent errors with Google’s message, without retrying them', async () => {
    const own = google.addSpreadsheet('Not yours');
    google.denied.add(own.id);
    const forbidden = await openOutput({ kind: 'sheets', spreadsheetId: own.id }, options()).catch((e: unknown) => e);
    expect(forbidden).toBeInstanceOf(PermanentError);
    expect(forbidden).toMatchObject({ code: 'OUTPUT_FORBIDDEN' });
    expect((forbidden as Error).message).toContain('The caller does not have permission');
    expect(google.requests.filter((r) => r.path === `/v4/spreadsheets/${own.id}`)).toHaveLength(1);

    await expect(openOutput({ kind: 'sheets', spreadsheetId: 'gone' }, options())).rejects.toMatchObject({
      code: 'OUTPUT_NOT_FOUND',
    });
    await expect(openOutput({ kind: 'sheets', folderId: 'nope' }, options())).rejects.toMatchObject({
      code: 'OUTPUT_NOT_FOUND',
      message: expect.stringContaining('File not found: nope.'),
    });

    // A 403 in the middle of writing ends the output: later calls fail the same way.
    google.failNext(isValuesWrite, {
      status: 403,
      body: googleErrorBody(403, 'The caller does not have permission'),
    });
    const out = await openOutput(
      { kind: 'sheets' },
      options({ sheets: { retry: fastRetry, limits: { maxRowsPerRequest: 5 } } }),
    );
    const s = await out.addSheet({ name: 'Terms', columns: columns.slice(0, 2) });
    const err = await s.append(Array.from({ length: 20 }, (_, i) => [`t${i}`, i])).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'OUTPUT_FORBIDDEN', retryable: false });
    await expect(s.append([['more', 1]])).rejects.toBe(err);
    expect(google.requests.filter((r) => r.status === 403 && isValuesWrite(r))).toHaveLength(1);
  });

  it('refuses a sheet that would not fit the spreadsheet before writing it, naming the alternative', async () => {
    // The new spreadsheet's default tab holds 1000 × 26 cells until the end: room for 1000 rows of 4 columns.
    google.maxCells = 30_000;
    const out = await openOutput(
      { kind: 'sheets' },
      options({ sheets: { retry: fastRetry, limits: { maxCells: 30_000, maxRowsPerRequest: 100 } } }),
    );
    const s = await out.addSheet({ name: 'Terms', columns: columns.slice(0, 4) });
    const err = await s.append(Array.from({ length: 2000 }, (_, i) => [`t${i}`, i, i, 0])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect(err).toMatchObject({
      code: 'OUTPUT_TOO_LARGE',
      message: expect.stringMatching(/\d+ rows × 4 columns .*XLSX or CSV/),
    });
    expect(google.requests.every((r) => r.status === 200)).toBe(true);
  });

  it('hands a long Retry-After back to the caller instead of holding the worker', async () => {
    google.failNext(isValuesWrite, { status: 429, headers: { 'retry-after': '120' } });
    const out = await openOutput({ kind: 'sheets' }, options());
    const s = await out.addSheet({ name: 'Terms', columns: columns.slice(0, 2) });
    await s.append([['a', 1]]);
    const err = await s.close().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetryableError);
    expect(err).toMatchObject({ code: 'OUTPUT_QUOTA', retryAfterMs: 120_000 });
  });

  it('stops at once when the run is cancelled, even inside a backoff', async () => {
    google.failNext(isValuesWrite, { status: 429, headers: { 'retry-after': '30' } });
    const controller = new AbortController();
    const out = await openOutput({ kind: 'sheets' }, options({ signal: controller.signal }));
    const s = await out.addSheet({ name: 'Terms', columns: columns.slice(0, 2) });
    await s.append([['a', 1]]);
    const closing = s.close().catch((e: unknown) => e);
    await waitFor(() => google.requests.some((r) => r.status === 429), { what: 'the 429' });
    const started = Date.now();
    const reason = new Error('cancelled by user');
    controller.abort(reason);
    expect(await closing).toBe(reason);
    expect(Date.now() - started).toBeLessThan(2000);
    await expect(out.finish()).rejects.toBe(reason);
  });
});
