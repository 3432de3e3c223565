import { ReportParamsError, validateReportParams } from '@ppc/proto';
import { describe, expect, it } from 'vitest';
import { budgetPacing } from './budget-pacing.ts';
import { type FieldRow, runLocally, table } from './fixtures.ts';

// On 15 June 2025, June has 30 days: 14 with data (1–14), 16 to go (today included).
const TODAY = '2025-06-15';

function spend(id: string, name: string, day: number, cost: number): FieldRow {
  return {
    'campaign.id': id,
    'campaign.name': name,
    'campaign.status': 'ENABLED',
    'segments.date': `2025-06-${String(day).padStart(2, '0')}`,
    'metrics.cost_micros': cost,
  };
}

const days = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

const SPEND = [
  // Alpha spends its daily budget (3000 / 30 = 100) every day.
  ...days(1, 14).map((d) => spend('1', 'Alpha', d, 100)),
  // Beta (600 a month, 20 a day) started slow and now spends 30 a day.
  ...days(1, 7).map((d) => spend('2', 'Beta', d, 10)),
  ...days(8, 14).map((d) => spend('2', 'Beta', d, 30)),
  // Gamma has no budget; no traffic on the 14th.
  ...days(1, 13).map((d) => spend('3', 'Gamma', d, 5)),
];
const BUDGETS = { campaignMonthlyBudgets: { '1': 3000, '2': 600, '4': 1000 }, accountMonthlyBudget: 5000 };

const run = (params: object = BUDGETS, rows: Record<string, FieldRow[]> = { spend: SPEND }, batchRows?: number) =>
  runLocally('budget-pacing', params, TODAY, rows, batchRows ? { batchRows } : {});

describe('budget pacing report', () => {
  it('reads month-to-date spend up to yesterday', () => {
    const plan = budgetPacing.plan(validateReportParams('budget-pacing', {}), { today: TODAY });
    expect(plan).toMatchObject({ month: '2025-06', daysInMonth: 30, elapsed: 14 });
    expect(budgetPacing.queries(plan).map((q) => q.query.dateRange)).toEqual([
      { start: '2025-06-01', end: '2025-06-14' },
    ]);
  });

  it('projects month-end spend from the recent daily run rate and compares it with the budget', () => {
    const rows = table(run(), 'Pacing');
    const cents = (x: unknown) => Math.round((x as number) * 100) / 100;
    expect(rows.map((r) => [r.campaign, r.budget, r.spend, cents(r.projected), r.pacing])).toEqual([
      ['Alpha', 3000, 1400, 3000, 'On track'],
      ['Beta', 600, 280, 760, 'Overspending'],
      ['Gamma', null, 65, cents(65 + (30 / 7) * 16), 'No budget'],
      ['4', 1000, 0, 0, 'Underspending'],
      ['Account total (2025-06)', 5000, 1745, cents(1745 + (940 / 7) * 16), 'Underspending'],
    ]);
    const [alpha, beta, gamma, idle, account] = rows;
    expect(alpha).toMatchObject({ expected: 1400, pace: 1, runRate: 100, projectedShare: 1, remaining: 1600 });
    expect(alpha).toMatchObject({ recommendedDaily: 100, cappedDays: 7, limited: 'Yes' });
    expect(beta).toMatchObject({ expected: 280, pace: 1, runRate: 30, remaining: 320, recommendedDaily: 20 });
    expect(beta!.projectedShare).toBeCloseTo(760 / 600, 12);
    expect(beta).toMatchObject({ cappedDays: 7, limited: 'Yes' });
    expect(gamma).toMatchObject({ expected: null, pace: null, cappedDays: null, limited: null, remaining: null });
    expect(gamma!.runRate).toBeCloseTo(30 / 7, 12);
    expect(idle).toMatchObject({ spend: 0, pace: 0, runRate: 0, cappedDays: 0, limited: 'No', recommendedDaily: 62.5 });
    expect(account!.expected).toBeCloseTo(5000 * (14 / 30), 9);
    expect(account!.runRate).toBeCloseTo(940 / 7, 9);
    expect(account).toMatchObject({ remaining: 3255, recommendedDaily: 3255 / 16, cappedDays: null, limited: null });
  });

  it('counts a campaign as limited only when capped on enough recent days', () => {
    // Beta reaches 95% of its daily budget (19) on two days only.
    const rows = [
      ...days(1, 12).map((d) => spend('2', 'Beta', d, 10)),
      spend('2', 'Beta', 13, 19),
      spend('2', 'Beta', 14, 25),
    ];
    const beta = table(run({ campaignMonthlyBudgets: { '2': 600 } }, { spend: rows }), 'Pacing')[0]!;
    expect(beta).toMatchObject({ cappedDays: 2, limited: 'No' });
    const sensitive = table(
      run({ campaignMonthlyBudgets: { '2': 600 }, limitedMinDays: 2 }, { spend: rows }),
      'Pacing',
    )[0]!;
    expect(sensitive.limited).toBe('Yes');
  });

  it('charts daily and cumulative spend against the account budget', () => {
    const daily = table(run(), 'Daily spend');
    expect(daily).toHaveLength(14);
    expect(daily[0]).toEqual({ date: '2025-06-01', spend: 115, cumulative: 115, budgetToDate: 5000 / 30 });
    expect(daily[13]).toEqual({ date: '2025-06-14', spend: 130, cumulative: 1745, budgetToDate: (5000 * 14) / 30 });
  });

  it('reports a finished month as it ended', () => {
    const may = [spend('1', 'Alpha', 1, 0)].map((r) => ({
      ...r,
      'segments.date': '2025-05-31',
      'metrics.cost_micros': 40,
    }));
    const plan = budgetPacing.plan(validateReportParams('budget-pacing', { month: '2025-05' }), { today: TODAY });
    expect(plan).toMatchObject({ elapsed: 31, daysInMonth: 31 });
    const [alpha] = table(run({ month: '2025-05', campaignMonthlyBudgets: { '1': 31 } }, { spend: may }), 'Pacing');
    expect(alpha).toMatchObject({ spend: 40, projected: 40, recommendedDaily: null, pacing: 'Overspending' });
  });

  it('refuses a month that has not started', () => {
    const params = validateReportParams('budget-pacing', { month: '2025-07' });
    expect(() => budgetPacing.plan(params, { today: TODAY })).toThrow(ReportParamsError);
    expect(() => budgetPacing.plan(params, { today: TODAY })).toThrow(/\/month: 2025-07 has not started/);
  });

  it("uses the platform's daily budgets where no monthly budget is given", () => {
    const plan = budgetPacing.plan(validateReportParams('budget-pacing', { useDailyBudgets: true }), { today: TODAY });
    expect(budgetPacing.queries(plan).map((q) => q.query.select)).toContainEqual([
      'campaign.id',
      'campaign.name',
      'campaign_budget.amount_micros',
    ]);
    const budgets = [{ 'campaign.id': '2', 'campaign.name': 'Beta', 'campaign_budget.amount_micros': 25 }];
    const beta = table(run({ useDailyBudgets: true }, { spend: SPEND, budgets }), 'Pacing').find(
      (r) => r.campaign === 'Beta',
    );
    // 25 a day: 750 for June; capped means ≥ 23.75, which Beta spent on its last 7 days.
    expect(beta).toMatchObject({ budget: 750, cappedDays: 7, limited: 'Yes' });
  });

  it('has nothing to fetch on the first of the month, and says so', () => {
    const plan = budgetPacing.plan(validateReportParams('budget-pacing', BUDGETS), { today: '2025-06-01' });
    expect(plan.elapsed).toBe(0);
    expect(budgetPacing.queries(plan)).toEqual([]);
    const sheets = runLocally('budget-pacing', BUDGETS, '2025-06-01', {});
    expect(table(sheets, 'Pacing').map((r) => [r.campaign, r.spend, r.expected, r.projected, r.pacing])).toEqual([
      ['1', 0, 0, null, 'No data yet'],
      ['2', 0, 0, null, 'No data yet'],
      ['4', 0, 0, null, 'No data yet'],
      ['Account total (2025-06)', 0, 0, null, 'No data yet'],
    ]);
    expect(table(sheets, 'Daily spend')).toEqual([]);
  });

  it('gives the same report however the rows are batched', () => {
    expect(run(BUDGETS, { spend: SPEND }, 5)).toEqual(run());
  });
});
