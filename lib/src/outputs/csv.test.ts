// CSV outputs against the real `artifacts`-style object store on the test run's nats-server (JetStream).
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { PermanentError } from '../errors/index.ts';
import { uniqueName } from '../testing/index.ts';
import { heldStore, namesUnder, scratchArtifacts, text } from './fixtures/artifacts.ts';
import { openOutput } from './open.ts';
import type { OutputColumn } from './types.ts';

let nats: Awaited<ReturnType<typeof scratchArtifacts>>;
beforeAll(async () => {
  nats = await scratchArtifacts(inject('natsUrl'));
});
afterAll(async () => {
  await nats[Symbol.asyncDispose]();
});

const termColumns: OutputColumn[] = [
  { key: 'term', header: 'Search term', type: 'string' },
  { key: 'clicks', header: 'Clicks', type: 'integer' },
  { key: 'cost', header: 'Cost', type: 'money' },
  { key: 'ctr', header: 'CTR', type: 'percent' },
  { key: 'day', header: 'Day', type: 'date' },
  { key: 'converted', header: 'Converted', type: 'boolean' },
  { key: 'url', header: 'Final URL', type: 'url' },
];

const runId = () => uniqueName('run').toLowerCase();

describe('CSV output', () => {
  it('stores one RFC 4180 object per sheet under the run, and links to each', async () => {
    const id = runId();
    const out = await openOutput(
      { kind: 'csv' },
      { runId: id, title: 'Search terms', deps: { objectStore: nats.store } },
    );
    const terms = await out.addSheet({ name: 'Terms', columns: termColumns, currency: 'EUR' });
    await terms.append([
      ['plain', 12, 3.5, 0.25, '2025-03-01', true, 'https://shop.example/a'],
      ['with, comma', 0, 0.1 + 0.2, 1 / 3, new Date('2025-03-02T23:30:00Z'), false, null],
      ['say "hi"\r\nnext line', null, null, null, null, null, 'https://shop.example/b?x=1,2'],
    ]);
    await terms.append([['naïve café ✓', 1, 1234567.891, 0, '2025-12-31', null, '']]);
    await terms.close();
    const totals = await out.addSheet({ name: 'Totals', columns: [{ key: 'n', header: 'Rows', type: 'integer' }] });
    await totals.append([[4]]);
    const links = await out.finish();

    expect(links).toEqual([
      { kind: 'csv', name: 'Terms.csv', url: `/artifacts/${id}/Terms.csv` },
      { kind: 'csv', name: 'Totals.csv', url: `/artifacts/${id}/Totals.csv` },
    ]);
    expect(await namesUnder(nats.store, id)).toEqual([`${id}/Terms.csv`, `${id}/Totals.csv`]);
    expect(await text(nats.store, `${id}/Terms.csv`)).toBe(
      'Search term,Clicks,Cost,CTR,Day,Converted,Final URL\r\n' +
        'plain,12,3.5,0.25,2025-03-01,true,https://shop.example/a\r\n' +
        // float noise is trimmed to 15 significant digits; a Date is its UTC day
        '"with, comma",0,0.3,0.333333333333333,2025-03-02,false,\r\n' +
        '"say ""hi""\r\nnext line",,,,,,"https://shop.example/b?x=1,2"\r\n' +
        'naïve café ✓,1,1234567.891,0,2025-12-31,,\r\n',
    );
    expect(await text(nats.store, `${id}/Totals.csv`)).toBe('Rows\r\n4\r\n');
    const info = await nats.store.info(`${id}/Terms.csv`);
    expect(info?.metadata).toEqual({ runId: id, fileName: 'Terms.csv', contentType: 'text/csv; charset=utf-8' });
  });

  it('neutralises text that a spreadsheet would run as a formula, and can start with a BOM for Excel', async () => {
    const id = runId();
    const out = await openOutput(
      { kind: 'csv' },
      { runId: id, title: 't', deps: { objectStore: nats.store }, csv: { bom: true } },
    );
    const s = await out.addSheet({ name: 'Terms', columns: termColumns.slice(0, 2) });
    await s.append([
      ['=HYPERLINK("http://evil.example","x")', -5],
      ['+1', 1],
      ['-shoes', 2],
      ['@sum', 3],
    ]);
    await out.finish();
    const data = await nats.store.getBlob(`${id}/Terms.csv`);
    expect([...data!.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    expect(Buffer.from(data!.subarray(3)).toString()).toBe(
      `Search term,Clicks\r\n"'=HYPERLINK(""http://evil.example"",""x"")",-5\r\n'+1,1\r\n'-shoes,2\r\n'@sum,3\r\n`,
    );
  });

  it('a retried run overwrites its own files: one object per name, holding the last attempt', async () => {
    const id = runId();
    for (const attempt of [1, 2]) {
      const out = await openOutput({ kind: 'csv' }, { runId: id, title: 't', deps: { objectStore: nats.store } });
      const s = await out.addSheet({ name: 'Terms', columns: termColumns.slice(0, 2) });
      await s.append([[`attempt ${attempt}`, attempt]]);
      await out.finish();
    }
    expect(await namesUnder(nats.store, id)).toEqual([`${id}/Terms.csv`]);
    expect(await text(nats.store, `${id}/Terms.csv`)).toBe('Search term,Clicks\r\nattempt 2,2\r\n');
  });

  it('an aborted attempt leaves the previous complete file as it was and no partial object', async () => {
    const id = runId();
    const first = await openOutput({ kind: 'csv' }, { runId: id, title: 't', deps: { objectStore: nats.store } });
    await (await first.addSheet({ name: 'Terms', columns: termColumns.slice(0, 2) })).append([['complete', 1]]);
    await first.finish();

    const controller = new AbortController();
    const second = await openOutput(
      { kind: 'csv' },
      { runId: id, title: 't', deps: { objectStore: nats.store }, signal: controller.signal },
    );
    const terms = await second.addSheet({ name: 'Terms', columns: termColumns.slice(0, 2) });
    await terms.append(Array.from({ length: 5000 }, (_, i) => [`partial ${i}`, i]));
    const reason = new Error('run cancelled');
    controller.abort(reason);
    await expect(terms.append([['late', 0]])).rejects.toBe(reason);
    await second.abort();

    expect(await namesUnder(nats.store, id)).toEqual([`${id}/Terms.csv`]);
    expect(await text(nats.store, `${id}/Terms.csv`)).toBe('Search term,Clicks\r\ncomplete,1\r\n');
  });

  it('holds back the writer while the store is not reading', async () => {
    const id = runId();
    const held = heldStore(nats.store);
    const out = await openOutput({ kind: 'csv' }, { runId: id, title: 't', deps: { objectStore: held.store } });
    const s = await out.addSheet({ name: 'Terms', columns: termColumns.slice(0, 2) });
    const chunk = Array.from({ length: 1000 }, (_, i) => [`a search term of some length ${i}`, i]);
    let appended = 0;
    const writing = (async () => {
      for (let i = 0; i < 100; i++) {
        await s.append(chunk);
        appended += chunk.length;
      }
    })();
    // While nothing is read, the writer may run ahead by its buffer (a few chunks), never by the whole sheet.
    let last = -1;
    let still = 0;
    while (still < 10 && appended < 100_000) {
      await new Promise((r) => setTimeout(r, 20));
      still = appended === last ? still + 1 : 0;
      last = appended;
    }
    expect(appended).toBeLessThanOrEqual(10_000);
    held.release();
    await writing;
    await out.finish();
    const body = await text(nats.store, `${id}/Terms.csv`);
    expect(body.split('\r\n')).toHaveLength(100_000 + 2);
  });

  it('refuses bad sheets and rows with errors naming the sheet, row, column and reason', async () => {
    const id = runId();
    const out = await openOutput({ kind: 'csv' }, { runId: id, title: 't', deps: { objectStore: nats.store } });
    await expect(out.addSheet({ name: 'a/b', columns: termColumns })).rejects.toThrow(/must not contain/);
    await expect(out.addSheet({ name: 'x'.repeat(32), columns: termColumns })).rejects.toThrow(/1 to 31/);
    await expect(
      out.addSheet({ name: 'Dup', columns: [termColumns[0]!, { ...termColumns[1]!, key: 'term' }] }),
    ).rejects.toThrow(/key "term" is used twice/);
    await expect(out.addSheet({ name: 'Money', columns: termColumns, currency: 'euro' })).rejects.toThrow(
      /currency: "euro" is not an ISO 4217 code/,
    );
    const s = await out.addSheet({ name: 'Terms', columns: termColumns.slice(0, 2) });
    await s.append([['ok', 1]]);
    const err = await s
      .append([
        ['fine', 2],
        ['bad', 2.5],
      ])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect(err).toMatchObject({
      code: 'OUTPUT_INVALID',
      message: 'sheet "Terms", row 3, column "clicks": expected a whole number, got 2.5',
    });
    await expect(s.append([['short']])).rejects.toThrow(/row 2: expected an array of 2 cells/);
    await expect(out.addSheet({ name: 'Next', columns: termColumns })).rejects.toThrow(/"Terms" is still open/);
    // A refused chunk writes nothing: the sheet goes on from where it was.
    await s.append([['after', 3]]);
    await s.close();
    await expect(s.append([['closed', 4]])).rejects.toThrow(/append after close/);
    await expect(out.addSheet({ name: 'terms', columns: termColumns })).rejects.toThrow(/already in this output/);
    await out.finish();
    expect(await text(nats.store, `${id}/Terms.csv`)).toBe('Search term,Clicks\r\nok,1\r\nafter,3\r\n');
  });
});
