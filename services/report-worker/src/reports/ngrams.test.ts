import { columnFor } from '@ppc/lib/ads';
import { describe, expect, it } from 'vitest';
import { openBatch, packRows } from './batch.ts';
import { shuffle } from './fixtures.ts';
import { emptyNgrams, mergeNgrams, NGRAM_WIDTH, NgramCounter, type NgramPartial, ngramEntries } from './ngrams.ts';

/** Counts `terms` (each with 1 impression, 10 clicks, cost 2.5 µ-units…) and returns {text: [terms, clicks, cost]}. */
function count(
  terms: Array<string | null>,
  sizes = [1, 2, 3],
  split = terms.length,
): Record<1 | 2 | 3, Record<string, number[]>> {
  let merged: NgramPartial = emptyNgrams(sizes);
  for (let i = 0; i < terms.length; i += split) {
    const counter = new NgramCounter(sizes);
    const batch = openBatch(
      packRows(
        [columnFor('search_term_view.search_term')],
        terms.slice(i, i + split).map((t) => [t]),
      ),
    );
    const col = batch.text('search_term_view.search_term');
    counter.batch(col);
    for (let r = 0; r < batch.rows; r++) counter.add(col.codes[r]!, 1, 10, 2_500_000, 0, 0);
    merged = mergeNgrams(merged, counter.emit());
  }
  const out = { 1: {}, 2: {}, 3: {} } as Record<1 | 2 | 3, Record<string, number[]>>;
  for (const n of [1, 2, 3] as const) {
    for (const e of ngramEntries(merged, n)) {
      out[n][e.text] = [e.values[e.offset]!, e.values[e.offset + 2]!, e.values[e.offset + 3]!];
    }
  }
  return out;
}

describe('n-gram counting', () => {
  it('adds each term to every 1-, 2- and 3-word phrase in it', () => {
    const c = count(['red running shoes', 'running shoes', 'red shoes']);
    expect(c[1]).toEqual({
      red: [2, 20, 5_000_000],
      running: [2, 20, 5_000_000],
      shoes: [3, 30, 7_500_000],
    });
    expect(c[2]).toEqual({
      'red running': [1, 10, 2_500_000],
      'running shoes': [2, 20, 5_000_000],
      'red shoes': [1, 10, 2_500_000],
    });
    expect(c[3]).toEqual({ 'red running shoes': [1, 10, 2_500_000] });
  });

  it('counts a phrase once per term even when the term repeats it', () => {
    const c = count(['buy shoes buy shoes now']);
    expect(c[1]).toEqual({ buy: [1, 10, 2_500_000], shoes: [1, 10, 2_500_000], now: [1, 10, 2_500_000] });
    expect(c[2]['buy shoes']).toEqual([1, 10, 2_500_000]);
    expect(c[2]['shoes buy']).toEqual([1, 10, 2_500_000]);
    expect(c[3]).toEqual({
      'buy shoes buy': [1, 10, 2_500_000],
      'shoes buy shoes': [1, 10, 2_500_000],
      'buy shoes now': [1, 10, 2_500_000],
    });
  });

  it('folds ASCII case and splits on any run of whitespace', () => {
    const c = count(['Running  SHOES', ' running\tshoes ', 'running shoes']);
    expect(c[1]).toEqual({ running: [3, 30, 7_500_000], shoes: [3, 30, 7_500_000] });
    expect(c[2]).toEqual({ 'running shoes': [3, 30, 7_500_000] });
  });

  it('keeps words in any script intact', () => {
    const c = count(['laufschuhe größe 44', 'größe 44', 'ランニング シューズ']);
    expect(c[2]['größe 44']).toEqual([2, 20, 5_000_000]);
    expect(c[1].シューズ).toEqual([1, 10, 2_500_000]);
  });

  it('skips empty and null terms, and counts only the sizes asked for', () => {
    const c = count(['', '   ', null, 'a b c'], [2]);
    expect(c[1]).toEqual({});
    expect(c[2]).toEqual({ 'a b': [1, 10, 2_500_000], 'b c': [1, 10, 2_500_000] });
    expect(c[3]).toEqual({});
  });

  it('gives the same sums however terms are split into batches', () => {
    const words = ['cheap', 'trail', 'shoes', 'mens', 'waterproof', 'boots', 'sale', 'near', 'me'];
    const terms = Array.from({ length: 400 }, (_, i) => {
      const n = 1 + (i % 5);
      return Array.from({ length: n }, (_, j) => words[(i * 7 + j * 3) % words.length]).join(' ');
    });
    const whole = count(terms);
    expect(count(terms, [1, 2, 3], 7)).toEqual(whole);
    expect(count(terms, [1, 2, 3], 1)).toEqual(whole);
  });

  it('merges partials in any order to the same sums', () => {
    const terms = ['a b c', 'b c d', 'c d e', 'a a a', 'e d c b a', 'b c', 'x'];
    const partials = () =>
      terms.map((t) => {
        const counter = new NgramCounter([1, 2, 3]);
        const col = openBatch(packRows([columnFor('search_term_view.search_term')], [[t]])).text(
          'search_term_view.search_term',
        );
        counter.batch(col);
        counter.add(col.codes[0]!, 1, 1, 1, 1, 1);
        return counter.emit();
      });
    const asObject = (p: NgramPartial) =>
      Object.fromEntries(
        ([1, 2, 3] as const).flatMap((n) =>
          ngramEntries(p, n).map((e) => [e.text, [...e.values.subarray(e.offset, e.offset + NGRAM_WIDTH)]]),
        ),
      );
    const reference = asObject(partials().reduce(mergeNgrams, emptyNgrams([1, 2, 3])));
    for (const seed of [1, 2, 3, 4, 5]) {
      const ps = shuffle(partials(), seed);
      // A tree of merges, not a left fold: (p0+p1)+(p2+p3)+...
      let level = ps;
      while (level.length > 1) {
        const next: NgramPartial[] = [];
        for (let i = 0; i < level.length; i += 2)
          next.push(i + 1 < level.length ? mergeNgrams(level[i]!, level[i + 1]!) : level[i]!);
        level = next;
      }
      expect(asObject(level[0]!)).toEqual(reference);
    }
    expect(reference['a a a']).toEqual([1, 1, 1, 1, 1, 1]);
    expect(reference.c).toEqual([5, 5, 5, 5, 5, 5]);
  });

  it('lists the most expensive n-grams without building the text of the others, ties kept', () => {
    const counter = new NgramCounter([1]);
    const terms = ['a', 'b', 'c', 'd', 'e'];
    const col = openBatch(
      packRows(
        [columnFor('search_term_view.search_term')],
        terms.map((t) => [t]),
      ),
    ).text('search_term_view.search_term');
    counter.batch(col);
    [5, 3, 3, 1, 0].forEach((cost, r) => {
      counter.add(col.codes[r]!, 0, 0, cost, 0, 0);
    });
    const p = counter.emit();
    const top = (count: number) => ngramEntries(p, 1, { count, field: 3 }).map((e) => e.text);
    expect(top(1)).toEqual(['a']);
    // b and c tie for second place: both can make the cut, the caller's sort decides.
    expect(top(2)).toEqual(['a', 'b', 'c']);
    expect(top(10)).toEqual(terms);
  });

  it('reuses a counter across batches without carrying anything over', () => {
    const counter = new NgramCounter([1, 2]);
    const run = (terms: string[]) => {
      const col = openBatch(
        packRows(
          [columnFor('search_term_view.search_term')],
          terms.map((t) => [t]),
        ),
      ).text('search_term_view.search_term');
      counter.batch(col);
      for (let r = 0; r < terms.length; r++) counter.add(col.codes[r]!, 1, 1, 1, 1, 1);
      const p = counter.emit();
      counter.reset();
      return Object.fromEntries(ngramEntries(p, 2).map((e) => [e.text, e.values[e.offset]]));
    };
    expect(run(['a b', 'a b', 'c d'])).toEqual({ 'a b': 2, 'c d': 1 });
    expect(run(['c d'])).toEqual({ 'c d': 1 });
  });
});
