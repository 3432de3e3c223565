/**
 * Account performance: the nine standard KPIs by day, by campaign and (on platforms that segment by device) by
 * device, for a period, with the relative change against the previous period or the same days a year earlier, and
 * totals. Two queries: the current period by day, the comparison period summed (it needs no days).
 */
import type { ReportQuery } from '@ppc/lib/ads';
import { type AccountPerformanceParams, dayNumber, dayString, resolvePeriod } from '@ppc/proto';
import type { ColumnBatch } from './batch.ts';
import { dayOfCode } from './dates.ts';
import { emptyKeyed, type Keyed, KeyedBuilder, mergeKeyed, mergeLabels } from './keyed.ts';
import {
  addInto,
  CHANGE_COLUMNS,
  COST,
  KPI_COLUMNS,
  KPI_FIELDS,
  KPI_WIDTH,
  kpiChanges,
  kpiReader,
  kpiValues,
} from './kpi.ts';
import type { ReportDefinition, Sheet, SheetCell, SheetSpec } from './types.ts';

export interface AccountPerformancePlan {
  current: { start: string; end: string; first: number; days: number };
  previous: { start: string; end: string } | null;
  byDevice: boolean;
}

/** Sums: current period in [0, 5), comparison period in [5, 10). */
const W = KPI_WIDTH * 2;

export interface AccountPerformancePartial {
  /** Current period, `KPI_WIDTH` sums per day of the period. */
  days: Float64Array;
  campaigns: Keyed;
  campaignNames: Record<string, string>;
  devices: Keyed;
  totals: Float64Array;
}

function previousOf(start: string, end: string, compareTo: AccountPerformanceParams['compareTo']) {
  const s = dayNumber(start);
  const e = dayNumber(end);
  if (compareTo === 'none') return null;
  if (compareTo === 'previous_period') return { start: dayString(s - (e - s + 1)), end: dayString(s - 1) };
  // The same calendar days a year earlier; 29 February maps to 28 February.
  const yearBack = (d: string) => {
    const [y, m, day] = d.split('-');
    const candidate = `${Number(y) - 1}-${m}-${day}`;
    return m === '02' && day === '29' ? `${Number(y) - 1}-02-28` : candidate;
  };
  return { start: yearBack(start), end: yearBack(end) };
}

function query(plan: AccountPerformancePlan, range: { start: string; end: string }, daily: boolean): ReportQuery {
  return {
    from: 'campaign',
    select: [
      'campaign.id',
      'campaign.name',
      ...(daily ? ['segments.date'] : []),
      ...(plan.byDevice ? ['segments.device'] : []),
      ...KPI_FIELDS,
    ],
    dateRange: { start: range.start, end: range.end },
  };
}

function specs(plan: AccountPerformancePlan): SheetSpec[] {
  const changes = plan.previous ? CHANGE_COLUMNS : [];
  const out: SheetSpec[] = [
    {
      name: 'Summary',
      columns: [
        { key: 'period', header: 'Period', type: 'string' },
        { key: 'start', header: 'Start', type: 'date' },
        { key: 'end', header: 'End', type: 'date' },
        ...KPI_COLUMNS,
        ...changes,
      ],
    },
    // Text, not `date`: the last row's label is "Total" (ISO days still sort as text, and Sheets reads them as dates).
    { name: 'By day', columns: [{ key: 'date', header: 'Date', type: 'string' }, ...KPI_COLUMNS] },
    {
      name: 'By campaign',
      columns: [
        { key: 'campaignId', header: 'Campaign ID', type: 'string' },
        { key: 'campaign', header: 'Campaign', type: 'string' },
        ...KPI_COLUMNS,
        ...changes,
      ],
    },
  ];
  if (plan.byDevice) {
    out.push({
      name: 'By device',
      columns: [{ key: 'device', header: 'Device', type: 'string' }, ...KPI_COLUMNS, ...changes],
    });
  }
  return out;
}

export const accountPerformance: ReportDefinition<
  AccountPerformanceParams,
  AccountPerformancePlan,
  AccountPerformancePartial
> = {
  id: 'account-performance',

  plan(params, env) {
    const { start, end } = resolvePeriod(params.period, env.today);
    const first = dayNumber(start);
    return {
      current: { start, end, first, days: dayNumber(end) - first + 1 },
      previous: previousOf(start, end, params.compareTo),
      byDevice: params.byDevice,
    };
  },

  queries(plan) {
    const out = [{ id: 'current', query: query(plan, plan.current, true) }];
    if (plan.previous) out.push({ id: 'previous', query: query(plan, plan.previous, false) });
    return out;
  },

  sheets: specs,

  empty(plan) {
    return {
      days: new Float64Array(plan.current.days * KPI_WIDTH),
      campaigns: emptyKeyed(W),
      campaignNames: {},
      devices: emptyKeyed(W),
      totals: new Float64Array(W),
    };
  },

  map(batch: ColumnBatch, queryId, plan) {
    const out = accountPerformance.empty(plan);
    const current = queryId === 'current';
    const base = current ? 0 : KPI_WIDTH;
    const read = kpiReader(batch);
    const ids = batch.text('campaign.id');
    const names = batch.text('campaign.name');
    const dates = current ? batch.text('segments.date') : null;
    const dayOf = dates ? dayOfCode((c) => dates.value(c)) : null;
    const devices = plan.byDevice ? batch.text('segments.device') : null;
    const campaigns = new KeyedBuilder(W);
    const deviceSums = new KeyedBuilder(W);
    const row = new Float64Array(KPI_WIDTH);
    for (let r = 0; r < batch.rows; r++) {
      row.fill(0);
      read(r, row, 0);
      const id = ids.at(r) ?? '';
      const name = names.at(r);
      if (name !== null && (out.campaignNames[id] === undefined || name < out.campaignNames[id]!)) {
        out.campaignNames[id] = name;
      }
      const c = campaigns.offset(id);
      addInto(campaigns.values, row, KPI_WIDTH, c + base);
      if (devices) {
        const d = deviceSums.offset(devices.at(r) ?? 'UNKNOWN');
        addInto(deviceSums.values, row, KPI_WIDTH, d + base);
      }
      addInto(out.totals, row, KPI_WIDTH, base);
      if (dates && dayOf) {
        const i = dayOf(dates.codes[r]!) - plan.current.first;
        if (i >= 0 && i < plan.current.days) addInto(out.days, row, KPI_WIDTH, i * KPI_WIDTH);
      }
    }
    out.campaigns = campaigns.finish();
    out.devices = deviceSums.finish();
    return out;
  },

  merge(a, b) {
    addInto(a.days, b.days);
    addInto(a.totals, b.totals);
    return {
      days: a.days,
      totals: a.totals,
      campaigns: mergeKeyed(a.campaigns, b.campaigns),
      campaignNames: mergeLabels(a.campaignNames, b.campaignNames),
      devices: mergeKeyed(a.devices, b.devices),
    };
  },

  finalize(p, plan) {
    const [summary, byDay, byCampaign, byDevice] = specs(plan);
    const compare = plan.previous !== null;
    const withChanges = (sums: Float64Array, o: number): SheetCell[] => {
      const cur = kpiValues(sums, o);
      return compare ? [...cur, ...kpiChanges(cur, kpiValues(sums, o + KPI_WIDTH))] : cur;
    };
    const sheets: Sheet[] = [];

    const summaryRows: SheetCell[][] = [
      ['Current period', plan.current.start, plan.current.end, ...withChanges(p.totals, 0)],
    ];
    if (plan.previous) {
      summaryRows.push([
        'Comparison period',
        plan.previous.start,
        plan.previous.end,
        ...kpiValues(p.totals, KPI_WIDTH),
        ...CHANGE_COLUMNS.map(() => null),
      ]);
    }
    sheets.push({ ...summary!, rows: summaryRows });

    const dayRows: SheetCell[][] = [];
    for (let i = 0; i < plan.current.days; i++) {
      dayRows.push([dayString(plan.current.first + i), ...kpiValues(p.days, i * KPI_WIDTH)]);
    }
    dayRows.push(['Total', ...kpiValues(p.totals, 0)]);
    sheets.push({ ...byDay!, rows: dayRows, totalsRow: true });

    const byCost = (k: Keyed, label: (key: string) => string) =>
      k.keys
        .map((key, i) => ({ key, i, label: label(key), cost: k.values[i * W + COST]! }))
        .sort(
          (x, y) => y.cost - x.cost || (x.label < y.label ? -1 : x.label > y.label ? 1 : 0) || (x.key < y.key ? -1 : 1),
        );

    const campaignRows: SheetCell[][] = byCost(p.campaigns, (id) => p.campaignNames[id] ?? id).map((c) => [
      c.key,
      c.label,
      ...withChanges(p.campaigns.values, c.i * W),
    ]);
    campaignRows.push(['', 'Total', ...withChanges(p.totals, 0)]);
    sheets.push({ ...byCampaign!, rows: campaignRows, totalsRow: true });

    if (byDevice) {
      const deviceRows: SheetCell[][] = byCost(p.devices, (d) => d).map((d) => [
        d.key,
        ...withChanges(p.devices.values, d.i * W),
      ]);
      deviceRows.push(['Total', ...withChanges(p.totals, 0)]);
      sheets.push({ ...byDevice, rows: deviceRows, totalsRow: true });
    }
    return sheets;
  },
};
