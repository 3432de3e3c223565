import { validateReportParams } from '@ppc/proto';
import { describe, expect, it } from 'vitest';
import { accountPerformance } from './account-performance.ts';
import { type FieldRow, runLocally, table } from './fixtures.ts';

const TODAY = '2025-06-15';
const PERIOD = { start: '2025-06-01', end: '2025-06-03' };

function row(
  id: string,
  name: string,
  date: string | null,
  [impressions, clicks, cost, conversions, value]: number[],
  device?: string,
): FieldRow {
  return {
    'campaign.id': id,
    'campaign.name': name,
    ...(date ? { 'segments.date': date } : {}),
    ...(device ? { 'segments.device': device } : {}),
    'metrics.impressions': impressions!,
    'metrics.clicks': clicks!,
    'metrics.cost_micros': cost!,
    'metrics.conversions': conversions!,
    'metrics.conversions_value': value!,
  };
}

const CURRENT = [
  row('1', 'Alpha', '2025-06-01', [100, 10, 5, 1, 40]),
  row('1', 'Alpha', '2025-06-02', [200, 10, 5, 0, 0]),
  row('2', 'Beta', '2025-06-01', [50, 5, 10, 2, 100]),
  row('2', 'Beta', '2025-06-03', [50, 5, 2.5, 0, 0]),
];
// The comparison period is summed by the platform (no date segment); Gamma ran only then.
const PREVIOUS = [row('1', 'Alpha', null, [100, 10, 5, 1, 20]), row('3', 'Gamma', null, [10, 1, 1, 0, 0])];

const run = (params: object = {}, batchRows?: number) =>
  runLocally(
    'account-performance',
    { period: PERIOD, ...params },
    TODAY,
    { current: CURRENT, previous: PREVIOUS },
    batchRows ? { batchRows } : {},
  );

/** The nine KPIs as the sheets order them: impressions, clicks, CTR, cost, CPC, conversions, CPA, value, ROAS. */
const kpis = (r: Record<string, unknown>) => [
  r.impressions,
  r.clicks,
  r.ctr,
  r.cost,
  r.cpc,
  r.conversions,
  r.cpa,
  r.value,
  r.roas,
];

describe('account performance report', () => {
  it('compares with the period of the same length just before', () => {
    const plan = accountPerformance.plan(validateReportParams('account-performance', { period: PERIOD }), {
      today: TODAY,
    });
    expect(accountPerformance.queries(plan).map((q) => [q.id, q.query.dateRange])).toEqual([
      ['current', PERIOD],
      ['previous', { start: '2025-05-29', end: '2025-05-31' }],
    ]);
  });

  it('compares with the same days a year earlier, 29 February becoming the 28th', () => {
    const plan = accountPerformance.plan(
      validateReportParams('account-performance', {
        period: { start: '2024-02-27', end: '2024-02-29' },
        compareTo: 'previous_year',
      }),
      { today: TODAY },
    );
    expect(plan.previous).toEqual({ start: '2023-02-27', end: '2023-02-28' });
  });

  it('lists every day of the period, days without traffic as zeros, then the totals', () => {
    const days = table(run(), 'By day');
    expect(days.map(kpis)).toEqual([
      [150, 15, 0.1, 15, 1, 3, 5, 140, 140 / 15],
      [200, 10, 0.05, 5, 0.5, 0, null, 0, 0],
      [50, 5, 0.1, 2.5, 0.5, 0, null, 0, 0],
      [400, 30, 0.075, 22.5, 0.75, 3, 7.5, 140, 140 / 22.5],
    ]);
    expect(days.map((d) => d.date)).toEqual(['2025-06-01', '2025-06-02', '2025-06-03', 'Total']);
  });

  it('ranks campaigns by cost, with the change against the comparison period and a totals row', () => {
    const campaigns = table(run(), 'By campaign');
    expect(campaigns.map((c) => [c.campaignId, c.campaign])).toEqual([
      ['2', 'Beta'],
      ['1', 'Alpha'],
      ['3', 'Gamma'],
      ['', 'Total'],
    ]);
    const [beta, alpha, gamma, total] = campaigns;
    expect(kpis(beta!)).toEqual([100, 10, 0.1, 12.5, 1.25, 2, 6.25, 100, 8]);
    // Beta did not run in the comparison period: no change can be given.
    expect(beta!.costChange).toBeNull();
    expect(kpis(alpha!)).toEqual([300, 20, 20 / 300, 10, 0.5, 1, 10, 40, 4]);
    expect(alpha).toMatchObject({
      impressionsChange: 2,
      clicksChange: 1,
      costChange: 1,
      cpcChange: 0,
      conversionsChange: 0,
      cpaChange: 1,
      valueChange: 1,
      roasChange: 0,
    });
    expect(alpha!.ctrChange).toBeCloseTo(-1 / 3, 12);
    // Gamma stopped: all of its traffic is gone.
    expect(kpis(gamma!)).toEqual([0, 0, null, 0, null, 0, null, 0, null]);
    expect(gamma).toMatchObject({ impressionsChange: -1, clicksChange: -1, costChange: -1, conversionsChange: null });
    expect(kpis(total!)).toEqual([400, 30, 0.075, 22.5, 0.75, 3, 7.5, 140, 140 / 22.5]);
    expect(total!.impressionsChange).toBeCloseTo(290 / 110, 12);
    expect(total!.costChange).toBeCloseTo(16.5 / 6, 12);
    expect(total!.cpaChange).toBeCloseTo(0.25, 12);
    expect(total!.ctrChange).toBeCloseTo(-0.25, 12);
  });

  it('summarises both periods', () => {
    const summary = table(run(), 'Summary');
    expect(summary.map((s) => [s.period, s.start, s.end, s.impressions, s.cost, s.conversions])).toEqual([
      ['Current period', '2025-06-01', '2025-06-03', 400, 22.5, 3],
      ['Comparison period', '2025-05-29', '2025-05-31', 110, 6, 1],
    ]);
    expect(summary[0]!.valueChange).toBeCloseTo(6, 12);
    expect(summary[1]!.valueChange).toBeNull();
  });

  it('drops the comparison entirely with compareTo none', () => {
    const sheets = run({ compareTo: 'none' });
    expect(table(sheets, 'By campaign').map((c) => c.campaign)).toEqual(['Beta', 'Alpha', 'Total']);
    expect(sheets.find((s) => s.name === 'By campaign')!.columns.some((c) => c.key.endsWith('Change'))).toBe(false);
    expect(table(sheets, 'Summary')).toHaveLength(1);
  });

  it('breaks down by device when the platform segments by device', () => {
    const sheets = runLocally('account-performance', { period: PERIOD, byDevice: true, compareTo: 'none' }, TODAY, {
      current: [
        row('1', 'Alpha', '2025-06-01', [100, 10, 5, 1, 40], 'MOBILE'),
        row('1', 'Alpha', '2025-06-01', [50, 2, 3, 0, 0], 'DESKTOP'),
        row('2', 'Beta', '2025-06-02', [10, 1, 1, 0, 0], 'MOBILE'),
      ],
    });
    const plan = accountPerformance.plan(
      validateReportParams('account-performance', { period: PERIOD, byDevice: true }),
      { today: TODAY },
    );
    expect(accountPerformance.queries(plan)[0]!.query.select).toContain('segments.device');
    expect(table(sheets, 'By device').map((d) => [d.device, d.impressions, d.cost])).toEqual([
      ['MOBILE', 110, 6],
      ['DESKTOP', 50, 3],
      ['Total', 160, 9],
    ]);
  });

  it('gives the same report however the rows are batched', () => {
    expect(run({}, 1)).toEqual(run());
  });
});
