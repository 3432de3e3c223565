import { describe, expect, it } from 'vitest';
import { type FieldRow, runLocally, table } from './fixtures.ts';

const TODAY = '2025-06-15';

function term(
  text: string,
  status: string,
  campaign: [string, string],
  adGroup: [string, string],
  [impressions, clicks, cost, conversions, value]: number[],
): FieldRow {
  return {
    'search_term_view.search_term': text,
    'search_term_view.status': status,
    'campaign.id': campaign[0],
    'campaign.name': campaign[1],
    'ad_group.id': adGroup[0],
    'ad_group.name': adGroup[1],
    'metrics.impressions': impressions!,
    'metrics.clicks': clicks!,
    'metrics.cost_micros': cost!,
    'metrics.conversions': conversions!,
    'metrics.conversions_value': value!,
  };
}

const shoes: [string, string] = ['1', 'Shoes'];
const brand: [string, string] = ['2', 'Brand'];
const running: [string, string] = ['11', 'Running'];
const sale: [string, string] = ['12', 'Sale'];
const brandGroup: [string, string] = ['21', 'Brand terms'];

// Seven search terms; with the default thresholds (cost ≥ 10, clicks ≥ 5, no conversions, not excluded) rows
// 1, 4 and 7 are negative-keyword candidates; row 3 would be, but is already excluded.
const ROWS: FieldRow[] = [
  term('cheap running shoes', 'NONE', shoes, running, [100, 10, 12.5, 0, 0]),
  term('running shoes', 'NONE', shoes, running, [200, 20, 30, 2, 150]),
  term('cheap shoes', 'EXCLUDED', shoes, sale, [50, 6, 11, 0, 0]),
  term('free shoes', 'NONE', brand, brandGroup, [40, 5, 10, 0, 0]),
  term('shoes', 'NONE', brand, brandGroup, [10, 4, 20, 0, 0]),
  term('running', 'ADDED', shoes, running, [30, 3, 2, 1, 50]),
  term('cheap running shoes', 'NONE', brand, brandGroup, [20, 8, 15, 0, 0]),
];

const run = (params: object, batchRows?: number) =>
  runLocally('search-terms', params, TODAY, { terms: ROWS }, batchRows ? { batchRows } : {});

describe('search terms report', () => {
  it('sums every term into the summary, with the share of cost spent on candidates', () => {
    expect(table(run({}), 'Summary')).toEqual([
      {
        terms: 7,
        impressions: 450,
        clicks: 56,
        cost: 100.5,
        conversions: 3,
        value: 200,
        candidates: 3,
        candidateCost: 37.5,
        candidateShare: 37.5 / 100.5,
      },
    ]);
  });

  it('lists terms that cost money without converting, most expensive first, with a totals row', () => {
    const rows = table(run({}), 'Negative candidates');
    expect(rows.map((r) => [r.term, r.campaign, r.adGroup, r.cost])).toEqual([
      ['cheap running shoes', 'Brand', 'Brand terms', 15],
      ['cheap running shoes', 'Shoes', 'Running', 12.5],
      ['free shoes', 'Brand', 'Brand terms', 10],
      ['Total: 3 candidates', null, null, 10 + 12.5 + 15],
    ]);
    expect(rows[0]).toMatchObject({ campaignId: '2', adGroupId: '21', status: 'NONE', impressions: 20, clicks: 8 });
    expect(rows[0]!.ctr).toBeCloseTo(8 / 20, 12);
    expect(rows[0]!.cpc).toBeCloseTo(15 / 8, 12);
    expect(rows[3]).toMatchObject({ impressions: 160, clicks: 23, conversions: 0 });
  });

  it('applies the thresholds and the candidate limit given as parameters', () => {
    const withExcluded = table(run({ includeExcluded: true }), 'Negative candidates');
    expect(withExcluded.map((r) => r.cost)).toEqual([15, 12.5, 11, 10, 48.5]);
    const stricter = table(run({ minCost: 12, minClicks: 9 }), 'Negative candidates');
    expect(stricter.map((r) => r.term)).toEqual(['cheap running shoes', 'Total: 1 candidates']);
    const lenient = table(run({ minCost: 0, minClicks: 0, maxConversions: 1 }), 'Negative candidates');
    // Every term with cost and at most one conversion, except the excluded one.
    expect(lenient.map((r) => r.cost)).toEqual([20, 15, 12.5, 10, 2, 59.5]);
    const limited = table(run({ candidatesLimit: 2 }), 'Negative candidates');
    expect(limited.map((r) => r.cost)).toEqual([15, 12.5, 37.5]);
    expect(limited[2]!.term).toBe('Total: 3 candidates');
  });

  it('aggregates 1-, 2- and 3-grams over all terms, most expensive first', () => {
    const sheets = run({});
    expect(table(sheets, '1-grams').map((r) => [r.ngram, r.terms, r.impressions, r.clicks, r.cost])).toEqual([
      ['shoes', 6, 420, 53, 98.5],
      ['running', 4, 350, 41, 59.5],
      ['cheap', 3, 170, 24, 38.5],
      ['free', 1, 40, 5, 10],
    ]);
    expect(table(sheets, '2-grams').map((r) => [r.ngram, r.terms, r.cost])).toEqual([
      ['running shoes', 3, 57.5],
      ['cheap running', 2, 27.5],
      ['cheap shoes', 1, 11],
      ['free shoes', 1, 10],
    ]);
    expect(table(sheets, '3-grams').map((r) => [r.ngram, r.terms, r.cost])).toEqual([['cheap running shoes', 2, 27.5]]);
    const shoes = table(sheets, '1-grams')[0]!;
    expect(shoes.conversions).toBe(2);
    expect(shoes.value).toBe(150);
    expect(shoes.ctr).toBeCloseTo(53 / 420, 12);
    expect(shoes.costShare).toBeCloseTo(98.5 / 100.5, 12);
    expect(shoes.cpc).toBeCloseTo(98.5 / 53, 12);
    expect(shoes.conversionRate).toBeCloseTo(2 / 53, 12);
    expect(shoes.cpa).toBeCloseTo(49.25, 12);
    expect(shoes.roas).toBeCloseTo(150 / 98.5, 12);
    // No conversions: no cost per conversion rather than infinity.
    expect(table(sheets, '1-grams')[3]!.cpa).toBeNull();
  });

  it('writes only the n-gram sizes asked for, each cut to the limit', () => {
    const sheets = run({ ngramSizes: [2], ngramLimit: 2 });
    expect(sheets.map((s) => s.name)).toEqual(['Summary', 'Negative candidates', '2-grams']);
    expect(table(sheets, '2-grams').map((r) => r.ngram)).toEqual(['running shoes', 'cheap running']);
  });

  it('gives the same report however the rows are batched', () => {
    const whole = run({});
    expect(run({}, 1)).toEqual(whole);
    expect(run({}, 3)).toEqual(whole);
  });
});
