import { describe, expect, it } from 'vitest';
import { schemaFor } from '../schema.ts';
import type { CellValue } from '../types.ts';
import { RowDecoder } from './row-template.ts';
import { SearchStreamParser } from './stream-parser.ts';

const select = [
  'search_term_view.search_term',
  'segments.date',
  'metrics.impressions',
  'metrics.cost_micros',
  'metrics.conversions',
  'campaign.id',
  'campaign.status',
  'ad_group_criterion.negative',
  'ad_group_criterion.final_urls',
  'metrics.average_cpc',
];
const schema = schemaFor({ from: 'search_term_view', select });

/** What the slow path gives: JSON.parse, then the accessors. */
function reference(rowText: string): CellValue[] {
  return new RowDecoder(schema).cellsOf(JSON.parse(rowText));
}

const row = (term: string, cost: unknown, extra = ''): string =>
  `{"searchTermView":{"resourceName":"customers/1/searchTermViews/2~3~x","searchTerm":${JSON.stringify(term)}},` +
  `"segments":{"date":"2025-06-01"},"metrics":{"impressions":"12","costMicros":${JSON.stringify(cost)},` +
  `"conversions":0.5${extra}},"campaign":{"id":"77","status":"ENABLED"}}`;

describe('RowDecoder', () => {
  it('decodes rows of the learnt layout to exactly the cells JSON.parse and the accessors give', () => {
    const d = new RowDecoder(schema);
    expect(d.learn(row('first', '1000'))).toBe(true);
    for (const text of [row('running shoes', '2500000'), row('ünïcødé 日本語 🎉', '0'), row('', '-1')]) {
      const out: CellValue[][] = [];
      expect(d.match(`,${text},`, 1, out)).toBe(text.length + 1);
      expect(out).toEqual([reference(text)]);
    }
  });

  it('does not match rows it cannot read exactly, and adds nothing for them', () => {
    const d = new RowDecoder(schema);
    d.learn(row('first', '1000'));
    const out: CellValue[][] = [];
    for (const text of [
      row('with \\"escape\\"', '1'), // an escape in a string
      row('a\nb', '1').replace('\\n', '\n'), // a raw control character (invalid JSON)
      row('x', 5), // a number where the layout had a string
      row('x', '1', ',"clicks":"3"'), // an extra field
      row('x', '1').replace('"conversions":0.5', '"conversions":05'), // not a JSON number
      row('x', '1').replace('"date":"2025-06-01"', '"date":null'),
      row('x', '1').slice(0, -1), // cut short
    ]) {
      expect(d.match(text, 0, out), text).toBe(-1);
    }
    expect(out).toEqual([]);
  });

  it('reads numbers, booleans, nulls, absent fields and repeated keys as the accessors do', () => {
    const text =
      '{"metrics":{"impressions":null,"costMicros":true,"conversions":-1.5e3,"averageCpc":"7"},' +
      '"adGroupCriterion":{"negative":true},"campaign":{"id":12,"id":"13","status":null}}';
    const d = new RowDecoder(schema);
    expect(d.learn(text)).toBe(true);
    const out: CellValue[][] = [];
    expect(d.match(text, 0, out)).toBe(text.length);
    expect(out).toEqual([reference(text)]);
    expect(out[0]![5]).toBe('13');
  });

  it('learns nothing from rows a template cannot hold', () => {
    const d = new RowDecoder(schema);
    expect(d.learn('{"adGroupCriterion":{"finalUrls":["https://x"]}}')).toBe(false); // an array
    expect(d.learn('{"campaign":{"id":"1\\u0032"}}')).toBe(false); // an escape
    expect(d.learn('{"campaign":{"id":tru}}')).toBe(false);
    expect(d.learn('{"segments":{"date":{"y":2025}}}')).toBe(false); // a column naming an object
    expect(d.match('{}', 0, [])).toBe(-1);
  });

  it('gives the same cells through the stream parser as the slow path, whatever the layouts and splits', () => {
    const rows = [
      row('a', '1'),
      row('b', '2'),
      row('c "quoted"', '3'),
      row('d', '4', ',"clicks":"1"'),
      row('e', '5', ',"clicks":"2"'),
      '{"adGroupCriterion":{"negative":true,"finalUrls":["https://x/a},{","b"]},"campaign":{"id":"9"}}',
      row('f},{"g', '6'),
      row('h', '7'),
      '{ "segments" : { "date" : "2025-01-02" } ,\n "metrics" : { "costMicros" : "8" } }',
      '{ "segments" : { "date" : "2025-01-03" } ,\n "metrics" : { "costMicros" : "9" } }',
    ];
    const body = Buffer.from(
      `[{"results":[${rows.slice(0, 6).join(',')}],"requestId":"r"},\n {"results":[${rows.slice(6).join(' , ')}]}]`,
    );
    const expected = rows.map(reference);
    let decoded = 0;
    const run = (pieces: Buffer[]): CellValue[][] => {
      const d = new RowDecoder(schema);
      const out: CellValue[][] = [];
      const match = (text: string, pos: number): number => {
        const end = d.match(text, pos, out);
        if (end > 0) decoded += 1;
        return end;
      };
      const p = new SearchStreamParser({
        onRow: (r) => out.push(d.cellsOf(r)),
        onChunk: () => {},
        decoder: { match, learn: (text) => d.learn(text) },
      });
      for (const piece of pieces) p.push(piece);
      p.end();
      return out;
    };
    expect(run([body])).toEqual(expected);
    // b, e and the second spaced row follow the layout of the row before them (f, with an escape, has none to give h)
    expect(decoded).toBe(3);
    for (let cut = 0; cut <= body.length; cut += 7) {
      expect(run([body.subarray(0, cut), body.subarray(cut)]), `split at ${cut}`).toEqual(expected);
    }
  });
});

describe('SearchStreamParser without a decoder', () => {
  it('parses many rows at once only where that is exactly the rows (`},{` inside strings and rows)', () => {
    const rows = [
      { a: 'x},{"b":1' },
      { a: [{ b: 1 }, { c: 2 }] },
      { a: '},{' },
      { a: 'y"},{"' },
      { a: '\\' },
      { b: 2 },
    ];
    const body = Buffer.from(`[{"results":[${rows.map((r) => JSON.stringify(r)).join(',')}]}]`);
    for (let cut = 0; cut <= body.length; cut++) {
      const out: unknown[] = [];
      const p = new SearchStreamParser({ onRow: (r) => out.push(r), onChunk: () => {} });
      p.push(body.subarray(0, cut));
      p.push(body.subarray(cut));
      p.end();
      expect(out, `split at ${cut}`).toEqual(rows);
    }
  });
});
