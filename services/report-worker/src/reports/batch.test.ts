import { type Column, columnFor } from '@ppc/lib/ads';
import { PermanentError } from '@ppc/lib/errors';
import { describe, expect, it } from 'vitest';
import { BatchPacker, openBatch, packRows, REPORT_COLUMN_MISSING } from './batch.ts';

const schema: Column[] = [
  columnFor('search_term_view.search_term'),
  columnFor('campaign.id'),
  columnFor('metrics.clicks'),
  columnFor('metrics.cost_micros'),
  columnFor('ad_group_criterion.quality_info.quality_score'),
  columnFor('ad_group_criterion.negative'),
  columnFor('ad_group_ad.ad.final_urls'),
  columnFor('segments.date'),
];

describe('packed batches', () => {
  it('carry numbers, text, nulls, booleans and lists to the other side unchanged', () => {
    const packed = packRows(schema, [
      ['running shoes', '101', 3, 1.25, 7, false, ['https://a.example/1'], '2025-06-01'],
      ['laufschuhe größe 44', '101', 0, 0, null, true, ['https://a.example/1', 'https://a.example/2'], '2025-06-01'],
      [null, '102', 12, 1234.5, 10, false, [], null],
    ]);
    const batch = openBatch(packed);
    expect(batch.rows).toBe(3);
    expect([...batch.number('metrics.clicks')]).toEqual([3, 0, 12]);
    expect([...batch.number('metrics.cost')]).toEqual([1.25, 0, 1234.5]);
    expect([...batch.number('ad_group_criterion.quality_info.quality_score')]).toEqual([7, Number.NaN, 10]);
    expect([...batch.number('ad_group_criterion.negative')]).toEqual([0, 1, 0]);
    const terms = batch.text('search_term_view.search_term');
    expect([0, 1, 2].map((r) => terms.at(r))).toEqual(['running shoes', 'laufschuhe größe 44', null]);
    const urls = batch.text('ad_group_ad.ad.final_urls');
    expect(urls.at(1)).toBe('https://a.example/1\nhttps://a.example/2');
    expect(urls.at(2)).toBe('');
    expect(batch.text('segments.date').at(2)).toBeNull();
  });

  it('stores each distinct text value once, so repeated names and ids cost a code per row', () => {
    const rows = Array.from({ length: 1000 }, (_, i) => [`term ${i % 10}`, '101', 1, 1, 5, false, [], '2025-06-01']);
    const packed = packRows(schema, rows);
    // 10 terms + campaign id + '' (empty url list) + date.
    expect(packed.dictSize).toBe(13);
    const ids = openBatch(packed).text('campaign.id');
    expect(new Set(ids.codes).size).toBe(1);
  });

  it('fills tasks of at most `capacity` rows and starts empty after each', () => {
    const packer = new BatchPacker(schema, 2);
    const row = ['t', '1', 1, 1, 1, false, [], '2025-06-01'];
    packer.add(row);
    expect(packer.full).toBe(false);
    packer.add(row);
    expect(packer.full).toBe(true);
    expect(() => packer.add(row)).toThrow(RangeError);
    const first = packer.finish();
    expect(first.rows).toBe(2);
    expect(packer.rows).toBe(0);
    packer.add(['u', '2', 2, 2, 2, true, [], '2025-06-02']);
    const second = openBatch(packer.finish());
    expect(second.text('search_term_view.search_term').at(0)).toBe('u');
    expect([...second.number('metrics.clicks')]).toEqual([2]);
  });

  it('names the missing column when a report reads one its query did not select', () => {
    const batch = openBatch(packRows(schema, []));
    const read = () => batch.number('metrics.impressions');
    expect(read).toThrow(PermanentError);
    expect(read).toThrow(/metrics\.impressions/);
    try {
      read();
    } catch (err) {
      expect((err as PermanentError).code).toBe(REPORT_COLUMN_MISSING);
    }
    // A text column read as a number is as wrong as a missing one.
    expect(() => batch.number('campaign.id')).toThrow(/no number column "campaign.id"/);
  });

  it('packs into memory given by an allocator, at its offset', () => {
    const shared = new SharedArrayBuffer(4096);
    const packer = new BatchPacker(schema, 10);
    packer.add(['shared memory', '7', 4, 2.5, 3, false, [], '2025-06-03']);
    const packed = packer.finish(() => ({ buffer: shared, byteOffset: 64 }));
    expect(packed).toMatchObject({ buffer: shared, byteOffset: 64, rows: 1 });
    const batch = openBatch(packed);
    expect(batch.text('search_term_view.search_term').at(0)).toBe('shared memory');
    expect([...batch.number('metrics.cost')]).toEqual([2.5]);
    expect(new Uint8Array(shared, 0, 64).every((b) => b === 0)).toBe(true);
  });

  it('moves as one ArrayBuffer, which a transfer detaches from the sender', () => {
    const packed = packRows(schema, [['a b', '1', 1, 1, 1, false, [], '2025-06-01']]);
    const buffer = packed.buffer as ArrayBuffer;
    expect(packed.byteLength).toBe(buffer.byteLength);
    const { port1, port2 } = new MessageChannel();
    port1.postMessage(packed, [buffer]);
    expect(buffer.byteLength).toBe(0);
    port1.close();
    port2.close();
  });
});
