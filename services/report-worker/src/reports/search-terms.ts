/**
 * Search terms and n-grams. One query: every search term of the period with its campaign and ad group (no date
 * segment, so a row is one term in one ad group, as Google reports it). Two analyses:
 *
 * - Negative keyword candidates: rows that cost money (≥ minCost, ≥ minClicks) without converting (≤ maxConversions),
 *   leaving out terms already excluded unless asked; the most expensive `candidatesLimit` are listed, the count and
 *   sums cover all of them. A partial keeps only its own top `candidatesLimit`, which is all a merge needs.
 * - N-grams: every term's metrics added to each distinct 1-, 2- and 3-word phrase in it (see ngrams.ts); sheets
 *   list the most expensive phrases with CTR, CPC, conversion rate, CPA and ROAS.
 */
import { type SearchTermsParams, resolvePeriod } from '@ppc/proto';
import type { ColumnBatch } from './batch.ts';
import { KPI_FIELDS, micros, units } from './kpi.ts';
import { emptyNgrams, mergeNgrams, NgramCounter, type NgramPartial, ngramEntries } from './ngrams.ts';
import type { ReportDefinition, Sheet, SheetCell, SheetSpec } from './types.ts';

export interface SearchTermsPlan {
  start: string;
  end: string;
  minCostMicros: number;
  minClicks: number;
  maxConversionsMicros: number;
  includeExcluded: boolean;
  candidatesLimit: number;
  ngramSizes: number[];
  ngramLimit: number;
}

/** [term, status, campaign id, campaign, ad group id, ad group, impressions, clicks, cost µ, conversions µ] */
export type Candidate = [string, string, string, string, string, string, number, number, number, number];

export interface SearchTermsPartial {
  /** [rows, impressions, clicks, cost µ, conversions µ, value µ] over every row. */
  totals: Float64Array;
  candidateCount: number;
  /** [impressions, clicks, cost µ, conversions µ] over every candidate. */
  candidateSums: Float64Array;
  /** The most expensive candidates, sorted, at most `candidatesLimit`. */
  candidates: Candidate[];
  ngrams: NgramPartial;
}

const EXCLUDED = new Set(['EXCLUDED', 'ADDED_EXCLUDED']);

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Most expensive first; ties broken on every other field, so the order is total and merges are order-independent. */
export function compareCandidates(a: Candidate, b: Candidate): number {
  return (
    b[8] - a[8] ||
    cmp(a[0], b[0]) ||
    cmp(a[2], b[2]) ||
    cmp(a[4], b[4]) ||
    b[7] - a[7] ||
    b[6] - a[6] ||
    a[9] - b[9] ||
    cmp(a[1], b[1]) ||
    cmp(a[3], b[3]) ||
    cmp(a[5], b[5])
  );
}

const NGRAM_COLUMNS = [
  { key: 'terms', header: 'Search terms', type: 'integer' },
  { key: 'impressions', header: 'Impressions', type: 'integer' },
  { key: 'clicks', header: 'Clicks', type: 'integer' },
  { key: 'ctr', header: 'CTR', type: 'percent' },
  { key: 'cost', header: 'Cost', type: 'money' },
  { key: 'costShare', header: 'Share of cost', type: 'percent' },
  { key: 'cpc', header: 'Avg. CPC', type: 'money' },
  { key: 'conversions', header: 'Conversions', type: 'number' },
  { key: 'conversionRate', header: 'Conv. rate', type: 'percent' },
  { key: 'cpa', header: 'Cost / conv.', type: 'money' },
  { key: 'value', header: 'Conv. value', type: 'money' },
  { key: 'roas', header: 'Conv. value / cost', type: 'number' },
] as const;

function specs(plan: SearchTermsPlan): SheetSpec[] {
  return [
    {
      name: 'Summary',
      columns: [
        { key: 'terms', header: 'Search terms', type: 'integer' },
        { key: 'impressions', header: 'Impressions', type: 'integer' },
        { key: 'clicks', header: 'Clicks', type: 'integer' },
        { key: 'cost', header: 'Cost', type: 'money' },
        { key: 'conversions', header: 'Conversions', type: 'number' },
        { key: 'value', header: 'Conv. value', type: 'money' },
        { key: 'candidates', header: 'Negative candidates', type: 'integer' },
        { key: 'candidateCost', header: 'Cost of candidates', type: 'money' },
        { key: 'candidateShare', header: 'Share of cost', type: 'percent' },
      ],
    },
    {
      name: 'Negative candidates',
      columns: [
        { key: 'term', header: 'Search term', type: 'string' },
        { key: 'status', header: 'Status', type: 'string' },
        { key: 'campaign', header: 'Campaign', type: 'string' },
        { key: 'campaignId', header: 'Campaign ID', type: 'string' },
        { key: 'adGroup', header: 'Ad group', type: 'string' },
        { key: 'adGroupId', header: 'Ad group ID', type: 'string' },
        { key: 'impressions', header: 'Impressions', type: 'integer' },
        { key: 'clicks', header: 'Clicks', type: 'integer' },
        { key: 'ctr', header: 'CTR', type: 'percent' },
        { key: 'cost', header: 'Cost', type: 'money' },
        { key: 'cpc', header: 'Avg. CPC', type: 'money' },
        { key: 'conversions', header: 'Conversions', type: 'number' },
      ],
    },
    ...plan.ngramSizes.map((n) => ({
      name: `${n}-grams`,
      columns: [{ key: 'ngram', header: `${n}-gram`, type: 'string' as const }, ...NGRAM_COLUMNS],
    })),
  ];
}

const ratio = (a: number, b: number): number | null => (b === 0 ? null : a / b);

/**
 * One counter kept between batches (of a thread, or of a loop): its tables would otherwise grow from small to the
 * batch's size again for every batch. It holds nothing of the previous batch once reset.
 */
let spare: { sizes: string; counter: NgramCounter } | null = null;

function takeCounter(sizes: readonly number[]): NgramCounter {
  const key = sizes.join();
  const kept = spare?.sizes === key ? spare.counter : null;
  spare = null;
  return kept ?? new NgramCounter(sizes);
}

function keepCounter(sizes: readonly number[], counter: NgramCounter): void {
  counter.reset();
  spare = { sizes: sizes.join(), counter };
}

/** The first `limit` of two sorted candidate lists. */
function mergeSorted(a: Candidate[], b: Candidate[], limit: number): Candidate[] {
  if (b.length === 0) return a;
  if (a.length === 0) return b;
  const out: Candidate[] = [];
  let i = 0;
  let j = 0;
  while (out.length < limit && (i < a.length || j < b.length)) {
    if (j >= b.length || (i < a.length && compareCandidates(a[i]!, b[j]!) <= 0)) out.push(a[i++]!);
    else out.push(b[j++]!);
  }
  return out;
}

export const searchTerms: ReportDefinition<SearchTermsParams, SearchTermsPlan, SearchTermsPartial> = {
  id: 'search-terms',

  plan(params, env) {
    const { start, end } = resolvePeriod(params.period, env.today);
    return {
      start,
      end,
      minCostMicros: micros(params.minCost),
      minClicks: params.minClicks,
      maxConversionsMicros: micros(params.maxConversions),
      includeExcluded: params.includeExcluded,
      candidatesLimit: params.candidatesLimit,
      ngramSizes: [...params.ngramSizes].sort(),
      ngramLimit: params.ngramLimit,
    };
  },

  queries(plan) {
    return [
      {
        id: 'terms',
        query: {
          from: 'search_term_view',
          select: [
            'search_term_view.search_term',
            'search_term_view.status',
            'campaign.id',
            'campaign.name',
            'ad_group.id',
            'ad_group.name',
            ...KPI_FIELDS,
          ],
          dateRange: { start: plan.start, end: plan.end },
        },
      },
    ];
  },

  sheets: specs,

  empty(plan) {
    return {
      totals: new Float64Array(6),
      candidateCount: 0,
      candidateSums: new Float64Array(4),
      candidates: [],
      ngrams: emptyNgrams(plan.ngramSizes),
    };
  },

  map(batch: ColumnBatch, _queryId, plan) {
    const out = searchTerms.empty(plan);
    const terms = batch.text('search_term_view.search_term');
    const status = batch.text('search_term_view.status');
    const impressions = batch.number('metrics.impressions');
    const clicks = batch.number('metrics.clicks');
    const cost = batch.number('metrics.cost');
    const conversions = batch.number('metrics.conversions');
    const value = batch.number('metrics.conversions_value');
    const counter = takeCounter(plan.ngramSizes);
    counter.batch(terms);
    const excludedCode = new Map<number, boolean>();
    const isExcluded = (code: number): boolean => {
      let e = excludedCode.get(code);
      if (e === undefined) {
        e = EXCLUDED.has(status.value(code) ?? '');
        excludedCode.set(code, e);
      }
      return e;
    };
    const t = out.totals;
    const cs = out.candidateSums;
    const chosen: number[] = [];
    const codes = terms.codes;
    const statusCodes = status.codes;
    for (let r = 0; r < batch.rows; r++) {
      const imp = impressions[r]! || 0;
      const clk = clicks[r]! || 0;
      const c = micros(cost[r]!);
      const conv = micros(conversions[r]!);
      const val = micros(value[r]!);
      t[0]! += 1;
      t[1]! += imp;
      t[2]! += clk;
      t[3]! += c;
      t[4]! += conv;
      t[5]! += val;
      counter.add(codes[r]!, imp, clk, c, conv, val);
      if (
        c > 0 &&
        c >= plan.minCostMicros &&
        clk >= plan.minClicks &&
        conv <= plan.maxConversionsMicros &&
        codes[r]! >= 0 &&
        (plan.includeExcluded || !isExcluded(statusCodes[r]!))
      ) {
        out.candidateCount += 1;
        cs[0]! += imp;
        cs[1]! += clk;
        cs[2]! += c;
        cs[3]! += conv;
        chosen.push(r);
      }
    }
    const ids = batch.text('campaign.id');
    const names = batch.text('campaign.name');
    const groupIds = batch.text('ad_group.id');
    const groups = batch.text('ad_group.name');
    out.candidates = chosen
      .map(
        (r): Candidate => [
          terms.at(r)!,
          status.at(r) ?? '',
          ids.at(r) ?? '',
          names.at(r) ?? '',
          groupIds.at(r) ?? '',
          groups.at(r) ?? '',
          impressions[r]! || 0,
          clicks[r]! || 0,
          micros(cost[r]!),
          micros(conversions[r]!),
        ],
      )
      .sort(compareCandidates)
      .slice(0, plan.candidatesLimit);
    out.ngrams = counter.emit();
    keepCounter(plan.ngramSizes, counter);
    return out;
  },

  merge(a, b, plan) {
    for (let i = 0; i < a.totals.length; i++) a.totals[i]! += b.totals[i]!;
    for (let i = 0; i < a.candidateSums.length; i++) a.candidateSums[i]! += b.candidateSums[i]!;
    return {
      totals: a.totals,
      candidateCount: a.candidateCount + b.candidateCount,
      candidateSums: a.candidateSums,
      candidates: mergeSorted(a.candidates, b.candidates, plan.candidatesLimit),
      ngrams: mergeNgrams(a.ngrams, b.ngrams),
    };
  },

  finalize(p, plan) {
    const [summary, negatives, ...ngramSpecs] = specs(plan);
    const t = p.totals;
    const cs = p.candidateSums;
    const sheets: Sheet[] = [
      {
        ...summary!,
        rows: [
          [
            t[0]!,
            t[1]!,
            t[2]!,
            units(t[3]!),
            units(t[4]!),
            units(t[5]!),
            p.candidateCount,
            units(cs[2]!),
            ratio(cs[2]!, t[3]!),
          ],
        ],
      },
    ];
    const candidateRow = (c: Candidate): SheetCell[] => [
      c[0],
      c[1],
      c[3],
      c[2],
      c[5],
      c[4],
      c[6],
      c[7],
      ratio(c[7], c[6]),
      units(c[8]),
      ratio(units(c[8]), c[7]),
      units(c[9]),
    ];
    const negativeRows = p.candidates.map(candidateRow);
    negativeRows.push([
      `Total: ${p.candidateCount} candidates`,
      null,
      null,
      null,
      null,
      null,
      cs[0]!,
      cs[1]!,
      ratio(cs[1]!, cs[0]!),
      units(cs[2]!),
      ratio(units(cs[2]!), cs[1]!),
      units(cs[3]!),
    ]);
    sheets.push({ ...negatives!, rows: negativeRows, totalsRow: true });
    plan.ngramSizes.forEach((n, i) => {
      const order = ngramEntries(p.ngrams, n as 1 | 2 | 3, { count: plan.ngramLimit, field: 3 })
        .sort((a, b) => b.values[b.offset + 3]! - a.values[a.offset + 3]! || cmp(a.text, b.text))
        .slice(0, plan.ngramLimit);
      sheets.push({
        ...ngramSpecs[i]!,
        rows: order.map(({ text: key, values: v, offset: o }) => {
          const imp = v[o + 1]!;
          const clk = v[o + 2]!;
          const c = units(v[o + 3]!);
          const conv = units(v[o + 4]!);
          const val = units(v[o + 5]!);
          return [
            key,
            v[o]!,
            imp,
            clk,
            ratio(clk, imp),
            c,
            ratio(v[o + 3]!, t[3]!),
            ratio(c, clk),
            conv,
            ratio(conv, clk),
            ratio(c, conv),
            val,
            ratio(val, c),
          ];
        }),
      });
    });
    return sheets;
  },
};
