// XLSX outputs against the real `artifacts`-style object store on the test run's nats-server (JetStream), read back
// with exceljs' own readers.
import { Readable } from 'node:stream';
import ExcelJS from 'exceljs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { uniqueName } from '../testing/index.ts';
import { heldStore, namesUnder, scratchArtifacts } from './fixtures/artifacts.ts';
import { openOutput } from './open.ts';
import type { OutputColumn } from './types.ts';

let nats: Awaited<ReturnType<typeof scratchArtifacts>>;
beforeAll(async () => {
  nats = await scratchArtifacts(inject('natsUrl'));
});
afterAll(async () => {
  await nats[Symbol.asyncDispose]();
});

const runId = () => uniqueName('run').toLowerCase();

async function workbook(name: string): Promise<ExcelJS.Workbook> {
  const data = await nats.store.getBlob(name);
  if (!data) throw new Error(`no object ${name}`);
  const wb = new ExcelJS.Workbook();
  await wb.xlsx.load(Buffer.from(data) as unknown as ArrayBuffer);
  return wb;
}

const columns: OutputColumn[] = [
  { key: 'campaign', header: 'Campaign', type: 'string' },
  { key: 'clicks', header: 'Clicks', type: 'integer' },
  { key: 'cost', header: 'Cost', type: 'money' },
  { key: 'ctr', header: 'CTR', type: 'percent' },
  { key: 'cpc', header: 'Avg. CPC', type: 'number' },
  { key: 'day', header: 'Day', type: 'date' },
  { key: 'url', header: 'Landing page', type: 'url' },
  { key: 'limited', header: 'Limited by budget', type: 'boolean' },
];

describe('XLSX output', () => {
  it('writes every sheet into one workbook with a bold frozen header, typed values and number formats', async () => {
    const id = runId();
    const out = await openOutput(
      { kind: 'xlsx' },
      { runId: id, title: 'Account performance: March 2025', currency: 'EUR', deps: { objectStore: nats.store } },
    );
    const byDay = await out.addSheet({ name: 'By day', columns });
    await byDay.append([
      ['Brand', 120, 45.5, 0.0423, 0.379, '2025-03-01', 'https://shop.example/?q="x"', false],
      ['Generic <shoes> & more', 0, 0, null, null, new Date('2025-03-02T10:00:00Z'), null, true],
    ]);
    await byDay.append([[null, null, null, null, null, null, `https://shop.example/${'x'.repeat(300)}`, null]]);
    await byDay.close();
    const yen = await out.addSheet({
      name: 'Japan',
      columns: [{ key: 'cost', header: 'Cost', type: 'money' }],
      currency: 'JPY',
    });
    await yen.append([[1500]]);
    const links = await out.finish();

    const file = 'Account performance- March 2025.xlsx';
    expect(links).toEqual([{ kind: 'xlsx', name: file, url: `/artifacts/${id}/${encodeURIComponent(file)}` }]);
    expect(await namesUnder(nats.store, id)).toEqual([`${id}/${file}`]);
    expect((await nats.store.info(`${id}/${file}`))?.metadata?.contentType).toBe(
      'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
    );

    const wb = await workbook(`${id}/${file}`);
    expect(wb.worksheets.map((w) => w.name)).toEqual(['By day', 'Japan']);
    const ws = wb.getWorksheet('By day')!;
    expect(ws.views[0]).toMatchObject({ state: 'frozen', ySplit: 1 });
    expect(ws.getRow(1).values).toEqual([undefined, ...columns.map((c) => c.header)]);
    expect(ws.getCell('A1').font?.bold).toBe(true);
    expect(ws.getCell('H1').font?.bold).toBe(true);
    expect(ws.actualRowCount).toBe(4);

    const row2 = ws.getRow(2);
    expect(row2.getCell(1).value).toBe('Brand');
    expect(row2.getCell(2).value).toBe(120);
    expect(row2.getCell(3).value).toBe(45.5);
    expect(row2.getCell(4).value).toBe(0.0423);
    expect(row2.getCell(6).value).toEqual(new Date(Date.UTC(2025, 2, 1)));
    expect(row2.getCell(7).value).toEqual({
      formula: 'HYPERLINK("https://shop.example/?q=""x""")',
      result: 'https://shop.example/?q="x"',
    });
    expect(row2.getCell(8).value).toBe(false);
    expect(ws.getCell('A3').value).toBe('Generic <shoes> & more');
    expect(ws.getCell('F3').value).toEqual(new Date(Date.UTC(2025, 2, 2)));
    expect(ws.getCell('D3').value).toBeNull();
    // Too long for a formula's string literal: kept as text.
    expect(ws.getCell('G4').value).toBe(`https://shop.example/${'x'.repeat(300)}`);

    expect(ws.getCell('B2').numFmt).toBe('#,##0');
    expect(ws.getCell('C2').numFmt).toBe('[$€]#,##0.00');
    expect(ws.getCell('D2').numFmt).toBe('0.00%');
    expect(ws.getCell('E2').numFmt).toBe('#,##0.00');
    expect(ws.getCell('F2').numFmt).toBe('yyyy-mm-dd');
    expect(wb.getWorksheet('Japan')!.getCell('A2').numFmt).toBe('[$¥]#,##0');
  });

  it('a retried run overwrites its own file instead of adding a second one', async () => {
    const id = runId();
    for (const attempt of [1, 2]) {
      const out = await openOutput({ kind: 'xlsx' }, { runId: id, title: 'Pacing', deps: { objectStore: nats.store } });
      const s = await out.addSheet({ name: 'Pacing', columns: columns.slice(0, 2) });
      await s.append([[`attempt ${attempt}`, attempt]]);
      await out.finish();
    }
    expect(await namesUnder(nats.store, id)).toEqual([`${id}/Pacing.xlsx`]);
    const ws = (await workbook(`${id}/Pacing.xlsx`)).getWorksheet('Pacing')!;
    expect(ws.getCell('A2').value).toBe('attempt 2');
    expect(ws.actualRowCount).toBe(2);
  });

  it('an aborted attempt keeps the previous complete file readable', async () => {
    const id = runId();
    const first = await openOutput({ kind: 'xlsx' }, { runId: id, title: 'T', deps: { objectStore: nats.store } });
    await (await first.addSheet({ name: 'S', columns: columns.slice(0, 2) })).append([['first', 1]]);
    await first.finish();

    const second = await openOutput({ kind: 'xlsx' }, { runId: id, title: 'T', deps: { objectStore: nats.store } });
    const s = await second.addSheet({ name: 'S', columns: columns.slice(0, 2) });
    await s.append(Array.from({ length: 20_000 }, (_, i) => [`second ${i}`, i]));
    await second.abort(new Error('worker shutting down'));
    await expect(s.append([['late', 1]])).rejects.toThrow('worker shutting down');

    expect(await namesUnder(nats.store, id)).toEqual([`${id}/T.xlsx`]);
    expect((await workbook(`${id}/T.xlsx`)).getWorksheet('S')!.getCell('A2').value).toBe('first');
  });

  it('streams a 200,000-row sheet without holding it: while the store reads nothing, the writer stops', async () => {
    const id = runId();
    const held = heldStore(nats.store);
    const maxBufferedBytes = 256 * 1024;
    const out = await openOutput(
      { kind: 'xlsx' },
      { runId: id, title: 'Big', currency: 'USD', maxBufferedBytes, deps: { objectStore: held.store } },
    );
    const s = await out.addSheet({ name: 'Terms', columns: columns.slice(0, 3) });
    const total = 200_000;
    const chunkRows = 1000;
    let appended = 0;
    const writing = (async () => {
      for (let start = 0; start < total; start += chunkRows) {
        const rows = Array.from({ length: chunkRows }, (_, i) => {
          const n = start + i;
          return [`search term number ${n}`, n, n * 0.37];
        });
        await s.append(rows);
        appended += rows.length;
      }
      await s.close();
    })();

    // Hold the store until the writer has made no progress for a while (or, if it never waits, has finished).
    let last = -1;
    let still = 0;
    while (still < 15 && appended < total) {
      await new Promise((r) => setTimeout(r, 20));
      still = appended === last ? still + 1 : 0;
      last = appended;
    }
    // Whatever it accepted meanwhile sits in memory; without back-pressure that would be the whole sheet.
    expect(appended).toBeLessThan(40_000);
    held.release();
    await writing;
    await out.finish();
    // After each append the writer waited until at most maxBufferedBytes were in flight, plus that append's XML.
    expect(out.stats().peakBufferedBytes).toBeLessThan(maxBufferedBytes + 512 * 1024);

    // Read back with exceljs' streaming reader: every row is there, in order.
    const data = await nats.store.getBlob(`${id}/Big.xlsx`);
    const reader = new ExcelJS.stream.xlsx.WorkbookReader(Readable.from([Buffer.from(data!)]), {});
    let rows = 0;
    let lastRow: unknown[] = [];
    for await (const sheet of reader) {
      for await (const row of sheet as AsyncIterable<ExcelJS.Row>) {
        rows += 1;
        lastRow = row.values as unknown[];
      }
    }
    expect(rows).toBe(total + 1);
    expect(lastRow.slice(1, 3)).toEqual(['search term number 199999', 199999]);
  });
});
