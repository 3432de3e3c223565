// Every report type, run as the worker runs it (runReport: demo connector over HTTP, piscina threads, merge,
// finalize), against the demo platform's small account. Each expectation is computed here from raw rows the test
// fetches itself, with plain code, and often through a different query than the report's (account-level rows for
// the daily totals, one keyword_view query for what the report joins from two), so it checks the report rather
// than repeating it.
import {
  type AccountRef,
  type AdPlatformConnector,
  type CellValue,
  createDemoConnector,
  type DemoPlatform,
  type ReportQuery,
  startDemoPlatform,
} from '@ppc/lib/ads';
import { freePort } from '@ppc/lib/infra';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalRows, checkSheet } from '../../../../lib/src/outputs/cells.ts';
import { table } from '../reports/fixtures.ts';
import { ReportPool } from './pool.ts';
import { runReport } from './run.ts';

const TODAY = '2025-06-15';
const CURRENT = { start: '2025-05-16', end: '2025-06-14' }; // last_30_days
const PREVIOUS = { start: '2025-04-16', end: '2025-05-15' };
const KPIS = [
  'metrics.impressions',
  'metrics.clicks',
  'metrics.cost_micros',
  'metrics.conversions',
  'metrics.conversions_value',
];

let platform: DemoPlatform;
let connector: AdPlatformConnector;
let pool: ReportPool;
let small: AccountRef;

beforeAll(async () => {
  platform = await startDemoPlatform({ port: await freePort(), seed: 3, today: TODAY });
  connector = createDemoConnector({ url: platform.url });
  small = { id: platform.world.byKey.get('small')!.id, loginCustomerId: platform.world.byKey.get('agency')!.id };
  pool = new ReportPool({ threads: 2 });
});

afterAll(async () => {
  await pool?.close();
  await connector?.close();
  await platform?.close();
});

/** Raw rows as objects keyed by column name (`metrics.cost`, in currency units). */
async function fetchRows(query: ReportQuery): Promise<Array<Record<string, CellValue>>> {
  const out: Array<Record<string, CellValue>> = [];
  for await (const batch of connector.streamReport(small, query)) {
    for (const row of batch.rows) out.push(Object.fromEntries(batch.schema.map((c, i) => [c.name, row[i]!])));
  }
  return out;
}

const run = (type: string, params: object) =>
  runReport(type, params, { connector, account: small, pool, today: TODAY });
const num = (v: CellValue | undefined) => v as number;
const cents = (x: unknown) => Math.round((x as number) * 100) / 100;
const micro = (x: unknown) => Math.round((x as number) * 1e6) / 1e6;
const ratio = (a: number, b: number) => (b === 0 ? null : a / b);

describe('reports on the demo platform', () => {
  it('account performance: days add up to the account, campaigns to their own totals, changes to the previous period', async () => {
    const result = await run('account-performance', {});
    // Account-level daily rows: the platform's own sums over every campaign.
    const account = await fetchRows({ from: 'customer', select: ['segments.date', ...KPIS], dateRange: CURRENT });
    const byDay = new Map(account.map((r) => [r['segments.date'] as string, r]));
    const days = table(result.sheets, 'By day');
    expect(days).toHaveLength(31);
    for (const d of days.slice(0, -1)) {
      const a = byDay.get(d.date as string);
      expect([d.date, d.impressions, d.clicks, micro(d.cost)]).toEqual([
        d.date,
        num(a?.['metrics.impressions'] ?? 0),
        num(a?.['metrics.clicks'] ?? 0),
        micro(a?.['metrics.cost'] ?? 0),
      ]);
      // Conversions are rounded to cents per row by the platform: campaign rows and account rows round apart.
      expect(Math.abs(num(d.conversions) - num(a?.['metrics.conversions'] ?? 0))).toBeLessThanOrEqual(0.02);
    }
    const sum = (rows: Array<Record<string, CellValue>>, f: string) => rows.reduce((s, r) => s + num(r[f]), 0);
    const total = days.at(-1)!;
    expect([total.date, total.impressions, total.clicks, micro(total.cost)]).toEqual([
      'Total',
      sum(account, 'metrics.impressions'),
      sum(account, 'metrics.clicks'),
      micro(sum(account, 'metrics.cost')),
    ]);

    const campaignsNow = await fetchRows({
      from: 'campaign',
      select: ['campaign.id', 'campaign.name', ...KPIS],
      dateRange: CURRENT,
    });
    const campaignsBefore = await fetchRows({
      from: 'campaign',
      select: ['campaign.id', ...KPIS],
      dateRange: PREVIOUS,
    });
    const before = new Map(campaignsBefore.map((r) => [r['campaign.id'] as string, r]));
    const expected = [...campaignsNow]
      .sort((a, b) => num(b['metrics.cost']) - num(a['metrics.cost']))
      .map((c) => {
        const prev = before.get(c['campaign.id'] as string)!;
        return [
          c['campaign.id'],
          c['campaign.name'],
          c['metrics.impressions'],
          c['metrics.clicks'],
          micro(c['metrics.cost']),
          micro((num(c['metrics.cost']) - num(prev['metrics.cost'])) / num(prev['metrics.cost'])),
          micro(ratio(num(c['metrics.clicks']), num(c['metrics.impressions']))),
        ];
      });
    const campaigns = table(result.sheets, 'By campaign');
    expect(
      campaigns
        .slice(0, -1)
        .map((c) => [
          c.campaignId,
          c.campaign,
          c.impressions,
          c.clicks,
          micro(c.cost),
          micro(c.costChange),
          micro(c.ctr),
        ]),
    ).toEqual(expected);
    expect(campaigns.at(-1)).toMatchObject({ campaign: 'Total', impressions: total.impressions, clicks: total.clicks });
    expect(result.stats.rows.current).toBeGreaterThan(0);
  });

  it('search terms: candidates and n-grams as a plain count over the raw rows gives them', async () => {
    const params = { minCost: 2, minClicks: 2, candidatesLimit: 10, ngramLimit: 25 };
    const result = await run('search-terms', params);
    const rows = await fetchRows({
      from: 'search_term_view',
      select: [
        'search_term_view.search_term',
        'search_term_view.status',
        'campaign.id',
        'ad_group.id',
        'metrics.clicks',
        'metrics.cost_micros',
        'metrics.conversions',
      ],
      dateRange: CURRENT,
    });
    expect(rows.length).toBe(5000);
    const totalCost = rows.reduce((s, r) => s + num(r['metrics.cost']), 0);
    const candidates = rows
      .filter(
        (r) =>
          num(r['metrics.cost']) >= 2 &&
          num(r['metrics.clicks']) >= 2 &&
          num(r['metrics.conversions']) === 0 &&
          !['EXCLUDED', 'ADDED_EXCLUDED'].includes(r['search_term_view.status'] as string),
      )
      .map(
        (r) =>
          [
            String(r['search_term_view.search_term']),
            String(r['campaign.id']),
            String(r['ad_group.id']),
            micro(r['metrics.cost']),
          ] as const,
      )
      .sort(
        (a, b) =>
          b[3] - a[3] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0) || (a[1] < b[1] ? -1 : 1) || (a[2] < b[2] ? -1 : 1),
      );
    expect(candidates.length).toBeGreaterThan(10);
    const listed = table(result.sheets, 'Negative candidates');
    expect(listed.slice(0, -1).map((c) => [c.term, c.campaignId, c.adGroupId, micro(c.cost)])).toEqual(
      candidates.slice(0, 10),
    );
    expect(listed.at(-1)!.term).toBe(`Total: ${candidates.length} candidates`);
    expect(micro(listed.at(-1)!.cost)).toBe(micro(candidates.reduce((s, c) => s + c[3], 0)));
    const [summary] = table(result.sheets, 'Summary');
    expect([summary!.terms, micro(summary!.cost), summary!.candidates]).toEqual([
      5000,
      micro(totalCost),
      candidates.length,
    ]);

    for (const n of [1, 2, 3]) {
      const grams = new Map<string, { terms: number; clicks: number; cost: number }>();
      for (const r of rows) {
        const words = String(r['search_term_view.search_term']).toLowerCase().split(/\s+/).filter(Boolean);
        const seen = new Set<string>();
        for (let i = 0; i + n <= words.length; i++) seen.add(words.slice(i, i + n).join(' '));
        for (const g of seen) {
          const s = grams.get(g) ?? { terms: 0, clicks: 0, cost: 0 };
          s.terms += 1;
          s.clicks += num(r['metrics.clicks']);
          s.cost += Math.round(num(r['metrics.cost']) * 1e6);
          grams.set(g, s);
        }
      }
      const top = [...grams]
        .sort((a, b) => b[1].cost - a[1].cost || (a[0] < b[0] ? -1 : 1))
        .slice(0, 25)
        .map(([g, s]) => [g, s.terms, s.clicks, s.cost / 1e6]);
      expect(table(result.sheets, `${n}-grams`).map((g) => [g.ngram, g.terms, g.clicks, g.cost])).toEqual(top);
    }
  });

  it('keyword health: the issues a direct look at each enabled keyword finds', async () => {
    const result = await run('keyword-health', { lowQualityScore: 4, minCostWithoutConversions: 20 });
    // One query with everything, instead of the report's keyword list joined to keyword metrics.
    const keywords = (
      await fetchRows({
        from: 'keyword_view',
        select: [
          'campaign.name',
          'campaign.status',
          'ad_group.id',
          'ad_group.name',
          'ad_group.status',
          'ad_group_criterion.keyword.text',
          'ad_group_criterion.keyword.match_type',
          'ad_group_criterion.status',
          'ad_group_criterion.quality_info.quality_score',
          'metrics.impressions',
          'metrics.cost_micros',
          'metrics.conversions',
        ],
        dateRange: CURRENT,
      })
    ).filter(
      (k) =>
        k['campaign.status'] === 'ENABLED' &&
        k['ad_group.status'] === 'ENABLED' &&
        k['ad_group_criterion.status'] === 'ENABLED',
    );
    const norm = (t: CellValue | undefined) => String(t).toLowerCase().trim().split(/\s+/).join(' ');
    const groupsOf = new Map<string, Set<string>>();
    for (const k of keywords) {
      const key = `${norm(k['ad_group_criterion.keyword.text'])}|${k['ad_group_criterion.keyword.match_type']}`;
      groupsOf.set(key, (groupsOf.get(key) ?? new Set()).add(k['ad_group.id'] as string));
    }
    const expected = keywords
      .map((k) => {
        const qs = k['ad_group_criterion.quality_info.quality_score'] as number | null;
        const cost = num(k['metrics.cost']);
        const dup = groupsOf.get(
          `${norm(k['ad_group_criterion.keyword.text'])}|${k['ad_group_criterion.keyword.match_type']}`,
        )!.size;
        const issues = [
          qs !== null && qs <= 4 ? `Low quality score (${qs})` : null,
          num(k['metrics.impressions']) === 0 ? 'No impressions' : null,
          cost >= 20 && num(k['metrics.conversions']) === 0 ? 'Cost without conversions' : null,
          dup > 1 ? `Duplicate (${dup} ad groups)` : null,
        ].filter(Boolean);
        return { k, cost, issues: issues.join('; ') };
      })
      .filter((x) => x.issues)
      .map((x) => [
        x.k['ad_group.name'],
        x.k['ad_group_criterion.keyword.text'],
        x.k['ad_group_criterion.keyword.match_type'],
        micro(x.cost),
        x.issues,
      ]);
    const got = table(result.sheets, 'Keyword issues').map((k) => [
      k.adGroup,
      k.keyword,
      k.matchType,
      micro(k.cost),
      k.issues,
    ]);
    const bySomething = (a: unknown[], b: unknown[]) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1);
    expect([...got].sort(bySomething)).toEqual([...expected].sort(bySomething));
    expect(got.map((g) => g[3])).toEqual([...got.map((g) => g[3])].sort((a, b) => (b as number) - (a as number)));
    expect(got.some((g) => String(g[4]).includes('Low quality score'))).toBe(true);
    const duplicateGroups = [...groupsOf.values()].filter((s) => s.size > 1).length;
    expect(table(result.sheets, 'Duplicates')).toHaveLength(duplicateGroups);
  });

  it('budget pacing: spend to date, run rate and projection from the daily spend', async () => {
    const daily = await fetchRows({
      from: 'campaign',
      select: ['campaign.id', 'campaign.name', 'segments.date', 'metrics.cost_micros'],
      dateRange: { start: '2025-06-01', end: '2025-06-14' },
    });
    const ids = [...new Set(daily.map((r) => r['campaign.id'] as string))].sort();
    expect(ids.length).toBe(3);
    const budgets = { [ids[0]!]: 900, [ids[1]!]: 3000 };
    const result = await run('budget-pacing', { campaignMonthlyBudgets: budgets, accountMonthlyBudget: 6000 });
    const rows = table(result.sheets, 'Pacing');
    for (const id of ids) {
      const spendOn = (d: number) =>
        daily
          .filter((r) => r['campaign.id'] === id && r['segments.date'] === `2025-06-${String(d).padStart(2, '0')}`)
          .reduce((s, r) => s + num(r['metrics.cost']), 0);
      const spent = Array.from({ length: 14 }, (_, i) => spendOn(i + 1));
      const total = spent.reduce((a, b) => a + b, 0);
      const runRate = spent.slice(7).reduce((a, b) => a + b, 0) / 7;
      const projected = total + runRate * 16;
      const budget = budgets[id] ?? null;
      const row = rows.find((r) => r.campaignId === id)!;
      expect([cents(row.spend), cents(row.runRate), cents(row.projected), row.budget]).toEqual([
        cents(total),
        cents(runRate),
        cents(projected),
        budget,
      ]);
      if (budget === null) {
        expect(row.pacing).toBe('No budget');
        continue;
      }
      const state = projected > budget * 1.1 ? 'Overspending' : projected < budget * 0.9 ? 'Underspending' : 'On track';
      const capped = spent.slice(7).filter((s) => s >= 0.95 * (budget / 30)).length;
      expect([row.pacing, row.cappedDays, row.limited]).toEqual([state, capped, capped >= 3 ? 'Yes' : 'No']);
      expect(cents(row.expected)).toBe(cents((budget * 14) / 30));
    }
    const account = rows.at(-1)!;
    expect(account.budget).toBe(6000);
    expect(cents(account.spend)).toBe(cents(daily.reduce((s, r) => s + num(r['metrics.cost']), 0)));
  });

  it('anomalies: the days that stray from the median of the same weekday', async () => {
    const params = { period: 'last_30_days', baselineWeeks: 4, metrics: ['clicks', 'cost'], thresholdPercent: 60 };
    const result = await run('anomalies', params);
    const daily = await fetchRows({
      from: 'campaign',
      select: ['campaign.id', 'campaign.name', 'segments.date', 'metrics.clicks', 'metrics.cost_micros'],
      dateRange: { start: '2025-04-18', end: '2025-06-14' },
    });
    const value = (id: string | null, date: string, f: string) =>
      daily
        .filter((r) => (id === null || r['campaign.id'] === id) && r['segments.date'] === date)
        .reduce((s, r) => s + num(r[f]), 0);
    const shift = (date: string, days: number) =>
      new Date(Date.parse(date) + days * 86_400_000).toISOString().slice(0, 10);
    const median = (xs: number[]) => {
      const s = [...xs].sort((a, b) => a - b);
      return (s[1]! + s[2]!) / 2;
    };
    const entities: Array<[string | null, string]> = [
      [null, 'Account'],
      ...[...new Map(daily.map((r) => [r['campaign.id'] as string, r['campaign.name'] as string]))].sort((a, b) =>
        a[1] < b[1] ? -1 : 1,
      ),
    ];
    const expected: string[] = [];
    for (let d = 29; d >= 0; d--) {
      const date = shift(CURRENT.start, d);
      for (const [id, name] of entities) {
        for (const [f, label, min] of [
          ['metrics.clicks', 'Clicks', 10],
          ['metrics.cost', 'Cost', 10],
        ] as const) {
          const baseline = median([1, 2, 3, 4].map((w) => value(id, shift(date, -7 * w), f)));
          const actual = value(id, date, f);
          if (baseline >= min && Math.abs(actual - baseline) / baseline >= 0.6)
            expected.push(`${date} ${name} ${label}`);
        }
      }
    }
    const found = table(result.sheets, 'Anomalies').map((a) => `${a.date} ${a.campaign} ${a.metric}`);
    expect(found).toEqual(expected);
    // The demo's campaigns have spikes and outages: there is something to find.
    expect(found.length).toBeGreaterThan(0);
  });

  it('every report type, with its default parameters, writes through the outputs (each cell fits its column type)', async () => {
    for (const type of ['account-performance', 'search-terms', 'keyword-health', 'budget-pacing', 'anomalies']) {
      const result = await run(type, {});
      const taken: string[] = [];
      for (const sheet of result.sheets) {
        const checked = checkSheet(sheet, taken, 'EUR');
        taken.push(sheet.name);
        expect(() => canonicalRows(checked, sheet.rows, 1), `${type} / ${sheet.name}`).not.toThrow();
      }
    }
  });
});
