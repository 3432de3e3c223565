import { validateReportParams } from '@ppc/proto';
import { describe, expect, it } from 'vitest';
import { anomalies } from './anomalies.ts';
import { type FieldRow, runLocally, table } from './fixtures.ts';

const TODAY = '2025-06-15';
// Monday 9 and Tuesday 10 June, each against the same weekday of the two weeks before.
const PERIOD = { start: '2025-06-09', end: '2025-06-10' };

function day(id: string, name: string, date: string, clicks: number, cost: number, conversions: number): FieldRow {
  return {
    'campaign.id': id,
    'campaign.name': name,
    'segments.date': date,
    'metrics.impressions': clicks * 10,
    'metrics.clicks': clicks,
    'metrics.cost_micros': cost,
    'metrics.conversions': conversions,
    'metrics.conversions_value': 0,
  };
}

const ROWS = [
  // Alpha: Mondays 100 and 120 clicks, then 250 (a spike); Tuesdays 100, 100, then no row at all (an outage).
  day('1', 'Alpha', '2025-05-26', 100, 10, 5),
  day('1', 'Alpha', '2025-06-02', 120, 12, 5),
  day('1', 'Alpha', '2025-06-09', 250, 25, 5),
  day('1', 'Alpha', '2025-05-27', 100, 10, 5),
  day('1', 'Alpha', '2025-06-03', 100, 10, 5),
  // Not a checked day, nor the same weekday as one: it counts for nothing.
  day('1', 'Alpha', '2025-06-05', 9999, 9999, 99),
  // Beta is too small to judge (baselines under 10 clicks, 10 in cost, 2 conversions), however much it moves.
  day('2', 'Beta', '2025-05-26', 5, 1, 0),
  day('2', 'Beta', '2025-06-02', 5, 1, 0),
  day('2', 'Beta', '2025-06-09', 15, 1, 0),
  day('2', 'Beta', '2025-05-27', 5, 1, 0),
  day('2', 'Beta', '2025-06-03', 5, 1, 0),
  day('2', 'Beta', '2025-06-10', 5, 1, 0),
];

const run = (params: object = {}, rows = ROWS, batchRows?: number) =>
  runLocally(
    'anomalies',
    { period: PERIOD, baselineWeeks: 2, ...params },
    TODAY,
    { daily: rows },
    batchRows ? { batchRows } : {},
  );

describe('anomalies report', () => {
  it('fetches the checked days and the baseline weeks before them', () => {
    const plan = anomalies.plan(validateReportParams('anomalies', { period: PERIOD, baselineWeeks: 2 }), {
      today: TODAY,
    });
    expect(anomalies.queries(plan)[0]!.query.dateRange).toEqual({ start: '2025-05-26', end: '2025-06-10' });
  });

  it('reports days that deviate from the same weekday of the weeks before, newest first, account first', () => {
    const found = table(run(), 'Anomalies').map((a) => [
      a.date,
      a.weekday,
      a.campaign,
      a.metric,
      a.actual,
      a.baseline,
      Math.round((a.change as number) * 1e4) / 1e4,
      a.direction,
    ]);
    expect(found).toEqual([
      ['2025-06-10', 'Tuesday', 'Account', 'Clicks', 5, 105, -0.9524, 'Drop'],
      ['2025-06-10', 'Tuesday', 'Account', 'Cost', 1, 11, -0.9091, 'Drop'],
      ['2025-06-10', 'Tuesday', 'Account', 'Conversions', 0, 5, -1, 'Drop'],
      ['2025-06-10', 'Tuesday', 'Alpha', 'Clicks', 0, 100, -1, 'Drop'],
      ['2025-06-10', 'Tuesday', 'Alpha', 'Cost', 0, 10, -1, 'Drop'],
      ['2025-06-10', 'Tuesday', 'Alpha', 'Conversions', 0, 5, -1, 'Drop'],
      ['2025-06-09', 'Monday', 'Account', 'Clicks', 265, 115, 1.3043, 'Spike'],
      ['2025-06-09', 'Monday', 'Account', 'Cost', 26, 12, 1.1667, 'Spike'],
      ['2025-06-09', 'Monday', 'Alpha', 'Clicks', 250, 110, 1.2727, 'Spike'],
      ['2025-06-09', 'Monday', 'Alpha', 'Cost', 25, 11, 1.2727, 'Spike'],
    ]);
    expect(table(run(), 'Anomalies')[3]!.campaignId).toBe('1');
  });

  it('takes the threshold, the metrics and the level from the parameters', () => {
    const strict = table(run({ thresholdPercent: 125 }), 'Anomalies').map((a) => [a.date, a.campaign, a.metric]);
    expect(strict).toEqual([
      ['2025-06-09', 'Account', 'Clicks'],
      ['2025-06-09', 'Alpha', 'Clicks'],
      ['2025-06-09', 'Alpha', 'Cost'],
    ]);
    const accountClicks = table(run({ metrics: ['clicks'], byCampaign: false }), 'Anomalies');
    expect(accountClicks.map((a) => [a.date, a.campaign, a.metric])).toEqual([
      ['2025-06-10', 'Account', 'Clicks'],
      ['2025-06-09', 'Account', 'Clicks'],
    ]);
    // With no minimum, Beta's jump from 5 to 15 clicks counts too.
    const everything = table(run({ minBaseline: { clicks: 0 }, metrics: ['clicks'] }), 'Anomalies');
    expect(everything.find((a) => a.campaign === 'Beta')).toMatchObject({ actual: 15, baseline: 5, change: 2 });
  });

  it('uses the median so that one unusual week does not move the baseline, unless the mean is asked for', () => {
    const rows = [
      day('1', 'Alpha', '2025-05-19', 1000, 100, 5),
      day('1', 'Alpha', '2025-05-26', 100, 10, 5),
      day('1', 'Alpha', '2025-06-02', 120, 12, 5),
      day('1', 'Alpha', '2025-06-09', 110, 11, 5),
    ];
    const monday = { period: { start: '2025-06-09', end: '2025-06-09' }, baselineWeeks: 3, byCampaign: false };
    expect(table(run(monday, rows), 'Anomalies')).toEqual([]);
    const mean = table(run({ ...monday, baseline: 'mean' }, rows), 'Anomalies');
    expect(mean.map((a) => [a.metric, a.baseline, a.direction])).toEqual([
      ['Clicks', 1220 / 3, 'Drop'],
      ['Cost', 122 / 3, 'Drop'],
    ]);
  });

  it("gives the account's checked days with their baselines", () => {
    const overview = table(run(), 'Daily overview');
    expect(overview.map((d) => [d.date, d.weekday, d.clicks, d.clicksBaseline, d.cost, d.costBaseline])).toEqual([
      ['2025-06-09', 'Monday', 265, 115, 26, 12],
      ['2025-06-10', 'Tuesday', 5, 105, 1, 11],
    ]);
    expect(overview[0]!.conversionsChange).toBe(0);
  });

  it('gives the same report however the rows are batched', () => {
    expect(run({}, ROWS, 1)).toEqual(run());
  });
});
