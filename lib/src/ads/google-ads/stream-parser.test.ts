import { describe, expect, it } from 'vitest';
import { JsonStreamError, SearchStreamParser } from './stream-parser.ts';

const chunks: Array<Record<string, unknown>> = [
  {
    results: [
      { campaign: { id: '1', name: 'Brand "Shoes" {winter} [sale], "results":[' } },
      { adGroupCriterion: { keyword: { text: 'back\\slash \\" } ] still string' }, finalUrls: ['https://x/a?b=[1]'] } },
      {
        searchTermView: { searchTerm: 'ünïcødé — 日本語 🎉' },
        metrics: { impressions: '10', nested: [[1, [2, { a: [] }]], {}] },
      },
    ],
    fieldMask: 'campaign.id,campaign.name',
    requestId: 'r1',
  },
  { results: [], fieldMask: 'results', requestId: 'r1' },
  { requestId: 'r1', results: [{ x: '\\\\' }, { y: '\\' }], queryResourceConsumption: '12' },
  { error: { code: 500, status: 'INTERNAL', message: 'x', details: [{ errors: [{ message: '"results":[{' }] }] } },
];
const rowsExpected = chunks.flatMap((c) => (c.results as unknown[] | undefined) ?? []);
const metaExpected = chunks.map((c) => {
  const { results, ...rest } = c as { results?: unknown[] };
  return results ? { results: [], ...rest } : rest;
});
const whole = Buffer.from(`[\n  ${chunks.map((c) => JSON.stringify(c, null, 1)).join(' ,\n')}\n]\n`, 'utf8');

function run(pieces: Buffer[]): { rows: unknown[]; metas: Record<string, unknown>[] } {
  const rows: unknown[] = [];
  const metas: Record<string, unknown>[] = [];
  const p = new SearchStreamParser({ onRow: (r) => rows.push(r), onChunk: (m) => metas.push(m) });
  for (const piece of pieces) p.push(piece);
  p.end();
  return { rows, metas };
}

function sameKeys(a: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(a).sort(([x], [y]) => x.localeCompare(y)));
}

describe('SearchStreamParser', () => {
  it('hands out every row and each chunk without its rows', () => {
    const { rows, metas } = run([whole]);
    expect(rows).toEqual(rowsExpected);
    expect(metas.map(sameKeys)).toEqual(metaExpected.map(sameKeys));
  });

  it('gives the same result whatever byte the body is split at', () => {
    for (let cut = 0; cut <= whole.length; cut++) {
      const { rows, metas } = run([whole.subarray(0, cut), whole.subarray(cut)]);
      expect(rows, `split at ${cut}`).toEqual(rowsExpected);
      expect(metas.map(sameKeys), `split at ${cut}`).toEqual(metaExpected.map(sameKeys));
    }
  });

  it('gives the same result one byte at a time (split escapes and multi-byte characters)', () => {
    const { rows, metas } = run(Array.from({ length: whole.length }, (_, i) => whole.subarray(i, i + 1)));
    expect(rows).toEqual(rowsExpected);
    expect(metas).toHaveLength(chunks.length);
  });

  it('hands out a row as soon as it closes', () => {
    const rows: unknown[] = [];
    const p = new SearchStreamParser({ onRow: (r) => rows.push(r), onChunk: () => {} });
    p.push(Buffer.from('[{"results":[{"a":1},{"b"'));
    expect(rows).toEqual([{ a: 1 }]);
    p.push(Buffer.from(':2}'));
    expect(rows).toEqual([{ a: 1 }, { b: 2 }]);
    expect(() => p.end()).toThrow(/truncated/);
  });

  it('reads a bare error object and an empty array', () => {
    const metas: unknown[] = [];
    const p = new SearchStreamParser({ onRow: () => {}, onChunk: (m) => metas.push(m) });
    p.push(Buffer.from('{"error":{"code":401,"status":"UNAUTHENTICATED"}}\n'));
    p.end();
    expect(metas).toEqual([{ error: { code: 401, status: 'UNAUTHENTICATED' } }]);
    expect(run([Buffer.from(' [ ] ')]).rows).toEqual([]);
  });

  it('rejects malformed bodies', () => {
    expect(() => run([Buffer.from('')])).toThrow(/empty/);
    expect(() => run([Buffer.from('"x"')])).toThrow(JsonStreamError);
    expect(() => run([Buffer.from('[{"results":[{"a":1}{"b":2}]}]')])).toThrow(/expected a result row/);
    expect(() => run([Buffer.from('[{"results":[{"a":tru}]}]')])).toThrow(/malformed row/);
    expect(() => run([Buffer.from('[{"results":[3]}]')])).toThrow(/expected a result row/);
    expect(() => run([Buffer.from('[{"a":1}{"b":2}]')])).toThrow(/expected a result chunk/);
    expect(() => run([Buffer.from('[{"a":1}] x')])).toThrow(/after the end/);
  });
});
