/**
 * Budget pacing for one month: spend to date per campaign against its monthly budget, the month-end spend projected
 * by extending the average daily spend of the most recent days, and whether a campaign is limited by its budget
 * (spend reached `cappedShare` of the daily budget on at least `limitedMinDays` of those days).
 *
 * Budgets come from the parameters (monthly, per campaign and for the account): agencies plan monthly budgets outside
 * the ad platform. With `useDailyBudgets` the platform's daily campaign budget (`campaign_budget.amount_micros`) fills
 * in for campaigns without one; the demo platform does not serve that field.
 *
 * "To date" ends yesterday: today's spend is still moving. Today counts as a remaining day.
 */
import { type BudgetPacingParams, dayNumber, dayString, monthOf, ReportParamsError } from '@ppc/proto';
import type { ColumnBatch } from './batch.ts';
import { dayOfCode } from './dates.ts';
import { emptyKeyed, type Keyed, KeyedBuilder, mergeKeyed, mergeLabels } from './keyed.ts';
import { micros, units } from './kpi.ts';
import type { ReportDefinition, Sheet, SheetCell, SheetSpec } from './types.ts';

export interface BudgetPacingPlan {
  month: string;
  first: number;
  daysInMonth: number;
  /** Days with data: the month's first day up to yesterday (or the whole month, for a past month). */
  elapsed: number;
  accountBudgetMicros: number | null;
  campaignBudgetsMicros: Record<string, number>;
  useDailyBudgets: boolean;
  trendDays: number;
  cappedShare: number;
  limitedMinDays: number;
  tolerance: number;
}

export interface BudgetPacingPartial {
  /** Spend in millionths per campaign id, one value per day of the month. */
  spend: Keyed;
  names: Record<string, string>;
  statuses: Record<string, string>;
  /** The platform's daily budget per campaign id, in millionths. */
  dailyBudgets: Record<string, number>;
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

const PACING_COLUMNS = [
  { key: 'campaignId', header: 'Campaign ID', type: 'string' },
  { key: 'campaign', header: 'Campaign', type: 'string' },
  { key: 'status', header: 'Status', type: 'string' },
  { key: 'budget', header: 'Monthly budget', type: 'money' },
  { key: 'spend', header: 'Spend to date', type: 'money' },
  { key: 'expected', header: 'Expected to date', type: 'money' },
  { key: 'pace', header: 'Pace', type: 'percent' },
  { key: 'runRate', header: 'Daily run rate', type: 'money' },
  { key: 'projected', header: 'Projected month-end', type: 'money' },
  { key: 'projectedShare', header: 'Projected / budget', type: 'percent' },
  { key: 'remaining', header: 'Budget left', type: 'money' },
  { key: 'recommendedDaily', header: 'Daily budget to land on target', type: 'money' },
  { key: 'cappedDays', header: 'Days capped', type: 'integer' },
  { key: 'limited', header: 'Limited by budget', type: 'string' },
  { key: 'pacing', header: 'Pacing', type: 'string' },
] as const;

function specs(): SheetSpec[] {
  return [
    { name: 'Pacing', columns: [...PACING_COLUMNS] },
    {
      name: 'Daily spend',
      columns: [
        { key: 'date', header: 'Date', type: 'date' },
        { key: 'spend', header: 'Spend', type: 'money' },
        { key: 'cumulative', header: 'Spend to date', type: 'money' },
        { key: 'budgetToDate', header: 'Budget to date', type: 'money' },
      ],
    },
  ];
}

export const budgetPacing: ReportDefinition<BudgetPacingParams, BudgetPacingPlan, BudgetPacingPartial> = {
  id: 'budget-pacing',

  plan(params, env) {
    const today = dayNumber(env.today);
    const current = monthOf(today);
    const first = params.month === 'current' ? current.start : dayNumber(`${params.month}-01`);
    if (first > current.start) {
      throw new ReportParamsError(
        'budget-pacing',
        '/month',
        `${params.month} has not started yet (today is ${env.today})`,
      );
    }
    const { end } = monthOf(first);
    const lastDataDay = Math.min(today - 1, end);
    return {
      month: dayString(first).slice(0, 7),
      first,
      daysInMonth: end - first + 1,
      elapsed: Math.max(0, lastDataDay - first + 1),
      accountBudgetMicros: params.accountMonthlyBudget === undefined ? null : micros(params.accountMonthlyBudget),
      campaignBudgetsMicros: Object.fromEntries(
        Object.entries(params.campaignMonthlyBudgets).map(([id, b]) => [id, micros(b)]),
      ),
      useDailyBudgets: params.useDailyBudgets,
      trendDays: params.trendDays,
      cappedShare: params.cappedShare,
      limitedMinDays: params.limitedMinDays,
      tolerance: params.tolerance,
    };
  },

  queries(plan) {
    const out = [];
    if (plan.elapsed > 0) {
      out.push({
        id: 'spend',
        query: {
          from: 'campaign',
          select: ['campaign.id', 'campaign.name', 'campaign.status', 'segments.date', 'metrics.cost_micros'],
          dateRange: { start: dayString(plan.first), end: dayString(plan.first + plan.elapsed - 1) },
        },
      });
    }
    if (plan.useDailyBudgets) {
      out.push({
        id: 'budgets',
        query: { from: 'campaign', select: ['campaign.id', 'campaign.name', 'campaign_budget.amount_micros'] },
      });
    }
    return out;
  },

  sheets: specs,

  empty(plan) {
    return { spend: emptyKeyed(plan.daysInMonth), names: {}, statuses: {}, dailyBudgets: {} };
  },

  map(batch: ColumnBatch, queryId, plan) {
    const out = budgetPacing.empty(plan);
    const ids = batch.text('campaign.id');
    const names = batch.text('campaign.name');
    for (let r = 0; r < batch.rows; r++) {
      const id = ids.at(r) ?? '';
      const name = names.at(r);
      if (name !== null) mergeLabels(out.names, { [id]: name });
    }
    if (queryId === 'budgets') {
      const amounts = batch.number('campaign_budget.amount');
      for (let r = 0; r < batch.rows; r++) {
        const a = amounts[r]!;
        if (!Number.isFinite(a)) continue;
        // One budget per campaign is expected; should a platform send two, the smaller wins in any order.
        const id = ids.at(r) ?? '';
        out.dailyBudgets[id] = Math.min(micros(a), out.dailyBudgets[id] ?? Number.POSITIVE_INFINITY);
      }
      return out;
    }
    const statuses = batch.text('campaign.status');
    const dates = batch.text('segments.date');
    const dayOf = dayOfCode((c) => dates.value(c));
    const cost = batch.number('metrics.cost');
    const spend = new KeyedBuilder(plan.daysInMonth);
    for (let r = 0; r < batch.rows; r++) {
      const id = ids.at(r) ?? '';
      const status = statuses.at(r);
      if (status !== null) mergeLabels(out.statuses, { [id]: status });
      const i = dayOf(dates.codes[r]!) - plan.first;
      const o = spend.offset(id);
      if (i >= 0 && i < plan.daysInMonth) spend.values[o + i]! += micros(cost[r]!);
    }
    out.spend = spend.finish();
    return out;
  },

  merge(a, b) {
    for (const [id, v] of Object.entries(b.dailyBudgets)) {
      a.dailyBudgets[id] = Math.min(v, a.dailyBudgets[id] ?? v);
    }
    return {
      spend: mergeKeyed(a.spend, b.spend),
      names: mergeLabels(a.names, b.names),
      statuses: mergeLabels(a.statuses, b.statuses),
      dailyBudgets: a.dailyBudgets,
    };
  },

  finalize(p, plan) {
    const [pacingSpec, dailySpec] = specs();
    const n = plan.daysInMonth;
    const remainingDays = n - plan.elapsed;
    const window = Math.min(plan.trendDays, plan.elapsed);
    const spendAt = new Map(p.spend.keys.map((k, i) => [k, i * n]));
    const ids = new Set([...p.spend.keys, ...Object.keys(p.dailyBudgets), ...Object.keys(plan.campaignBudgetsMicros)]);
    const account = new Float64Array(n);

    /** One pacing row from daily spend (µ) and a monthly and daily budget (µ, or null). */
    const pacing = (daily: ArrayLike<number>, o: number, monthly: number | null, perDay: number | null) => {
      let spend = 0;
      for (let d = 0; d < plan.elapsed; d++) spend += daily[o + d]!;
      let recent = 0;
      let capped = 0;
      for (let d = plan.elapsed - window; d < plan.elapsed; d++) {
        recent += daily[o + d]!;
        if (perDay !== null && perDay > 0 && daily[o + d]! >= plan.cappedShare * perDay) capped += 1;
      }
      const runRate = window > 0 ? recent / window : null;
      const projected = runRate === null ? null : spend + runRate * remainingDays;
      const expected = monthly === null ? null : (monthly * plan.elapsed) / n;
      const state =
        monthly === null
          ? 'No budget'
          : projected === null
            ? 'No data yet'
            : projected > monthly * (1 + plan.tolerance)
              ? 'Overspending'
              : projected < monthly * (1 - plan.tolerance)
                ? 'Underspending'
                : 'On track';
      const money = (m: number | null) => (m === null ? null : units(m));
      return {
        spend,
        cells: [
          money(monthly),
          units(spend),
          money(expected),
          expected ? spend / expected : null,
          money(runRate),
          money(projected),
          monthly && projected !== null ? projected / monthly : null,
          monthly === null ? null : units(monthly - spend),
          monthly === null || remainingDays === 0 ? null : units(Math.max(0, monthly - spend) / remainingDays),
          perDay === null ? null : capped,
          perDay === null || window === 0 ? null : capped >= plan.limitedMinDays ? 'Yes' : 'No',
          state,
        ] as SheetCell[],
      };
    };

    const zero = new Float64Array(n);
    let budgetSum = 0;
    let everyCampaignBudgeted = ids.size > 0;
    const rows = [...ids].map((id) => {
      const o = spendAt.get(id);
      const daily = o === undefined ? zero : p.spend.values;
      const at = o ?? 0;
      for (let d = 0; d < n; d++) account[d]! += daily[at + d]!;
      const platformDaily = plan.useDailyBudgets ? p.dailyBudgets[id] : undefined;
      const monthly = plan.campaignBudgetsMicros[id] ?? (platformDaily === undefined ? null : platformDaily * n);
      const perDay = platformDaily ?? (monthly === null ? null : monthly / n);
      if (monthly === null) everyCampaignBudgeted = false;
      else budgetSum += monthly;
      const name = p.names[id] ?? id;
      const row = pacing(daily, at, monthly, perDay);
      return { id, name, spend: row.spend, cells: [id, name, p.statuses[id] ?? null, ...row.cells] };
    });
    rows.sort((a, b) => b.spend - a.spend || cmp(a.name, b.name) || cmp(a.id, b.id));
    const accountBudget = plan.accountBudgetMicros ?? (everyCampaignBudgeted ? budgetSum : null);
    const total = pacing(account, 0, accountBudget, accountBudget === null ? null : accountBudget / n);
    // Whether the account as a whole is capped says little: campaigns are capped, accounts are not.
    total.cells[9] = null;
    total.cells[10] = null;

    const dailyRows: SheetCell[][] = [];
    let cumulative = 0;
    for (let d = 0; d < plan.elapsed; d++) {
      cumulative += account[d]!;
      dailyRows.push([
        dayString(plan.first + d),
        units(account[d]!),
        units(cumulative),
        accountBudget === null ? null : units((accountBudget * (d + 1)) / n),
      ]);
    }
    const sheets: Sheet[] = [
      {
        ...pacingSpec!,
        rows: [...rows.map((r) => r.cells), ['', `Account total (${plan.month})`, null, ...total.cells]],
        totalsRow: true,
      },
      { ...dailySpec!, rows: dailyRows },
    ];
    return sheets;
  },
};
