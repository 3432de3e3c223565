// Partials reach the main thread in whatever order the threads finish, so every report's merge must be associative
// and order-independent: the same rows, split into batches of any size and merged in any order or tree shape,
// must give exactly the same sheets (sums are integers, top-N lists have a total order).
import type { CellValue } from '@ppc/lib/ads';
import { type ReportTypeId, reportTypeIds, validateReportParams } from '@ppc/proto';
import { describe, expect, it } from 'vitest';
import { type FieldRow, runLocally } from './fixtures.ts';
import { reportDefinition } from './index.ts';

const TODAY = '2025-06-15';

function random(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = ['cheap', 'running', 'shoes', 'trail', 'mens', 'womens', 'sale', 'near', 'me', 'waterproof'];

/** Random rows for one of a report's queries: every selected field gets a plausible value. */
function rowsFor(
  select: readonly string[],
  range: { start: string; end: string } | undefined,
  n: number,
  seed: number,
) {
  const r = random(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const from = range ? Date.parse(range.start) / 86_400_000 : 0;
  const days = range ? Date.parse(range.end) / 86_400_000 - from + 1 : 1;
  const out: FieldRow[] = [];
  for (let i = 0; i < n; i++) {
    const campaign = pick(['1', '2', '3', '4']);
    const group = `${campaign}${pick(['1', '2', '3'])}`;
    const clicks = Math.floor(r() * 20);
    const row: FieldRow = {};
    for (const f of select) {
      let v: CellValue;
      switch (f) {
        case 'campaign.id':
          v = campaign;
          break;
        case 'campaign.name':
          v = `Campaign ${campaign}`;
          break;
        case 'campaign.status':
        case 'ad_group_criterion.status':
          v = 'ENABLED';
          break;
        case 'ad_group.id':
          v = group;
          break;
        case 'ad_group.name':
          v = `Group ${group}`;
          break;
        case 'ad_group_criterion.criterion_id':
          v = String(1000 + i);
          break;
        case 'ad_group_criterion.keyword.text':
          v = `${pick(WORDS)} ${pick(WORDS)}`;
          break;
        case 'ad_group_criterion.keyword.match_type':
          v = pick(['EXACT', 'PHRASE']);
          break;
        case 'ad_group_criterion.quality_info.quality_score':
          v = r() < 0.2 ? null : 1 + Math.floor(r() * 10);
          break;
        case 'search_term_view.search_term':
          v = Array.from({ length: 1 + Math.floor(r() * 4) }, () => pick(WORDS)).join(' ');
          break;
        case 'search_term_view.status':
          v = pick(['NONE', 'NONE', 'ADDED', 'EXCLUDED']);
          break;
        case 'segments.date':
          v = new Date((from + Math.floor(r() * days)) * 86_400_000).toISOString().slice(0, 10);
          break;
        case 'segments.device':
          v = pick(['MOBILE', 'DESKTOP']);
          break;
        case 'metrics.impressions':
          v = clicks * 10 + Math.floor(r() * 50);
          break;
        case 'metrics.clicks':
          v = clicks;
          break;
        case 'metrics.conversions':
          v = r() < 0.5 ? 0 : Math.round(r() * 300) / 100;
          break;
        case 'campaign_budget.amount_micros':
          v = 10 + Math.round(r() * 100);
          break;
        default:
          // Money and conversion value: two decimals, as currencies have them.
          v = Math.round(r() * clicks * 150) / 100;
      }
      row[f] = v;
    }
    out.push(row);
  }
  return out;
}

const PARAMS: Record<ReportTypeId, object> = {
  'account-performance': { byDevice: true },
  'search-terms': { minCost: 1, minClicks: 1, candidatesLimit: 5, ngramLimit: 15 },
  'keyword-health': { lowQualityScore: 5, minCostWithoutConversions: 5 },
  'budget-pacing': { campaignMonthlyBudgets: { '1': 100, '2': 500 }, useDailyBudgets: true },
  anomalies: { period: 'last_14_days', baselineWeeks: 2, minBaseline: { clicks: 1, cost: 1, conversions: 0.5 } },
};

function dataFor(type: ReportTypeId, seed: number): Record<string, FieldRow[]> {
  const def = reportDefinition(type);
  const plan = def.plan(validateReportParams(type, PARAMS[type]), { today: TODAY });
  return Object.fromEntries(
    def.queries(plan).map((q, i) => [q.id, rowsFor(q.query.select, q.query.dateRange, 60, seed * 10 + i)]),
  );
}

describe('merging partial aggregates', () => {
  for (const type of reportTypeIds) {
    it(`${type}: the same sheets for any batching and any merge order`, () => {
      const data = dataFor(type, 42);
      // Keyword metrics must name keywords that exist for a join to mean anything.
      if (type === 'keyword-health') {
        data.metrics = data.metrics!.map((m, i) => ({
          ...m,
          'ad_group.id': data.keywords![i % data.keywords!.length]!['ad_group.id']!,
          'ad_group_criterion.criterion_id':
            data.keywords![i % data.keywords!.length]!['ad_group_criterion.criterion_id']!,
        }));
      }
      const reference = runLocally(type, PARAMS[type], TODAY, data);
      expect(reference.some((s) => s.rows.length > 0)).toBe(true);
      for (const batchRows of [1, 7, 16]) {
        for (const seed of [1, 2, 3]) {
          expect(runLocally(type, PARAMS[type], TODAY, data, { batchRows, seed })).toEqual(reference);
          expect(runLocally(type, PARAMS[type], TODAY, data, { batchRows, seed, tree: true })).toEqual(reference);
        }
      }
    });
  }
});
