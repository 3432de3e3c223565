/**
 * Anomalies: each day of the period, for the account and (optionally) each campaign, compared with the same weekday
 * of the preceding `baselineWeeks` weeks (their median, or mean). A day is reported when a metric deviates from its
 * baseline by at least `thresholdPercent`, unless the baseline is too small to judge (`minBaseline`). Comparing
 * weekdays with weekdays keeps the weekly rhythm (quiet weekends) from looking like anomalies; a day without a row
 * (no traffic at all, an outage) counts as zero.
 */
import { type AnomaliesParams, type AnomalyMetric, dayNumber, dayString, resolvePeriod } from '@ppc/proto';
import type { ColumnBatch } from './batch.ts';
import { dayOfCode, weekdayName } from './dates.ts';
import { emptyKeyed, type Keyed, KeyedBuilder, mergeKeyed, mergeLabels } from './keyed.ts';
import { CLICKS, CONVERSIONS, COST, IMPRESSIONS, KPI_FIELDS, KPI_WIDTH, kpiReader, units } from './kpi.ts';
import type { ReportDefinition, Sheet, SheetCell, SheetColumn, SheetSpec } from './types.ts';

export interface AnomaliesPlan {
  /** First day fetched: the period's first day minus the baseline weeks. */
  first: number;
  /** Days fetched. */
  days: number;
  /** The checked days: `first + offset` onwards. */
  offset: number;
  checked: number;
  weeks: number;
  baseline: AnomaliesParams['baseline'];
  metrics: AnomalyMetric[];
  threshold: number;
  minBaseline: Record<AnomalyMetric, number>;
  byCampaign: boolean;
}

export interface AnomaliesPartial {
  /** Per campaign id: KPI sums (see kpi.ts) per fetched day. */
  series: Keyed;
  names: Record<string, string>;
}

const METRIC: Record<AnomalyMetric, { index: number; label: string; money: boolean; micros: boolean }> = {
  impressions: { index: IMPRESSIONS, label: 'Impressions', money: false, micros: false },
  clicks: { index: CLICKS, label: 'Clicks', money: false, micros: false },
  cost: { index: COST, label: 'Cost', money: true, micros: true },
  conversions: { index: CONVERSIONS, label: 'Conversions', money: false, micros: true },
};

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function specs(plan: AnomaliesPlan): SheetSpec[] {
  const overview: SheetColumn[] = [
    { key: 'date', header: 'Date', type: 'date' },
    { key: 'weekday', header: 'Weekday', type: 'string' },
  ];
  for (const m of plan.metrics) {
    const type = METRIC[m].money ? 'money' : 'number';
    overview.push({ key: m, header: METRIC[m].label, type });
    overview.push({ key: `${m}Baseline`, header: `${METRIC[m].label} baseline`, type });
    overview.push({ key: `${m}Change`, header: `${METRIC[m].label} Δ`, type: 'percent' });
  }
  return [
    {
      name: 'Anomalies',
      columns: [
        { key: 'date', header: 'Date', type: 'date' },
        { key: 'weekday', header: 'Weekday', type: 'string' },
        { key: 'campaign', header: 'Campaign', type: 'string' },
        { key: 'campaignId', header: 'Campaign ID', type: 'string' },
        { key: 'metric', header: 'Metric', type: 'string' },
        { key: 'actual', header: 'Actual', type: 'number' },
        { key: 'baseline', header: 'Baseline', type: 'number' },
        { key: 'change', header: 'Change', type: 'percent' },
        { key: 'direction', header: 'Direction', type: 'string' },
      ],
    },
    { name: 'Daily overview', columns: overview },
  ];
}

function middle(values: number[], how: AnomaliesParams['baseline']): number {
  if (how === 'mean') return values.reduce((a, b) => a + b, 0) / values.length;
  const s = [...values].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}

export const anomalies: ReportDefinition<AnomaliesParams, AnomaliesPlan, AnomaliesPartial> = {
  id: 'anomalies',

  plan(params, env) {
    const { start, end } = resolvePeriod(params.period, env.today);
    const checkedFirst = dayNumber(start);
    const checked = dayNumber(end) - checkedFirst + 1;
    const offset = params.baselineWeeks * 7;
    return {
      first: checkedFirst - offset,
      days: checked + offset,
      offset,
      checked,
      weeks: params.baselineWeeks,
      baseline: params.baseline,
      metrics: anomalyOrder(params.metrics),
      threshold: params.thresholdPercent / 100,
      minBaseline: {
        impressions: params.minBaseline.impressions,
        clicks: params.minBaseline.clicks,
        cost: params.minBaseline.cost,
        conversions: params.minBaseline.conversions,
      },
      byCampaign: params.byCampaign,
    };
  },

  queries(plan) {
    return [
      {
        id: 'daily',
        query: {
          from: 'campaign',
          select: ['campaign.id', 'campaign.name', 'segments.date', ...KPI_FIELDS],
          dateRange: { start: dayString(plan.first), end: dayString(plan.first + plan.days - 1) },
        },
      },
    ];
  },

  sheets: specs,

  empty(plan) {
    return { series: emptyKeyed(plan.days * KPI_WIDTH), names: {} };
  },

  map(batch: ColumnBatch, _queryId, plan) {
    const ids = batch.text('campaign.id');
    const names = batch.text('campaign.name');
    const dates = batch.text('segments.date');
    const dayOf = dayOfCode((c) => dates.value(c));
    const read = kpiReader(batch);
    const series = new KeyedBuilder(plan.days * KPI_WIDTH);
    const labels: Record<string, string> = {};
    for (let r = 0; r < batch.rows; r++) {
      const id = ids.at(r) ?? '';
      const name = names.at(r);
      if (name !== null && (labels[id] === undefined || name < labels[id]!)) labels[id] = name;
      const d = dayOf(dates.codes[r]!) - plan.first;
      const o = series.offset(id);
      if (d >= 0 && d < plan.days) read(r, series.values, o + d * KPI_WIDTH);
    }
    return { series: series.finish(), names: labels };
  },

  merge(a, b) {
    return { series: mergeKeyed(a.series, b.series), names: mergeLabels(a.names, b.names) };
  },

  finalize(p, plan) {
    const [anomalySpec, overviewSpec] = specs(plan);
    const width = plan.days * KPI_WIDTH;
    const account = new Float64Array(width);
    for (let i = 0; i < p.series.keys.length; i++) {
      for (let x = 0; x < width; x++) account[x]! += p.series.values[i * width + x]!;
    }
    const entities: Array<{ id: string; name: string; values: Float64Array; o: number }> = [
      { id: '', name: 'Account', values: account, o: 0 },
    ];
    if (plan.byCampaign) {
      p.series.keys
        .map((id, i) => ({ id, name: p.names[id] ?? id, values: p.series.values, o: i * width }))
        .sort((a, b) => cmp(a.name, b.name) || cmp(a.id, b.id))
        .forEach((e) => {
          entities.push(e);
        });
    }
    const value = (m: AnomalyMetric, sums: Float64Array, o: number, day: number): number => {
      const v = sums[o + day * KPI_WIDTH + METRIC[m].index]!;
      return METRIC[m].micros ? units(v) : v;
    };
    const judge = (m: AnomalyMetric, sums: Float64Array, o: number, day: number) => {
      const actual = value(m, sums, o, day);
      const past: number[] = [];
      for (let k = 1; k <= plan.weeks; k++) past.push(value(m, sums, o, day - 7 * k));
      const baseline = middle(past, plan.baseline);
      const judgeable = baseline > 0 && baseline >= plan.minBaseline[m];
      const change = baseline > 0 ? (actual - baseline) / baseline : null;
      return { actual, baseline, change, anomaly: judgeable && change !== null && Math.abs(change) >= plan.threshold };
    };

    const found: Array<{ day: number; rank: number; metric: number; row: SheetCell[] }> = [];
    entities.forEach((e, rank) => {
      for (let i = 0; i < plan.checked; i++) {
        const day = plan.offset + i;
        plan.metrics.forEach((m, metric) => {
          const j = judge(m, e.values, e.o, day);
          if (!j.anomaly) return;
          found.push({
            day,
            rank,
            metric,
            row: [
              dayString(plan.first + day),
              weekdayName(plan.first + day),
              e.name,
              e.id,
              METRIC[m].label,
              j.actual,
              j.baseline,
              j.change,
              j.actual > j.baseline ? 'Spike' : 'Drop',
            ],
          });
        });
      }
    });
    found.sort((a, b) => b.day - a.day || a.rank - b.rank || a.metric - b.metric);

    const overview: SheetCell[][] = [];
    for (let i = 0; i < plan.checked; i++) {
      const day = plan.offset + i;
      const row: SheetCell[] = [dayString(plan.first + day), weekdayName(plan.first + day)];
      for (const m of plan.metrics) {
        const j = judge(m, account, 0, day);
        row.push(j.actual, j.baseline, j.change);
      }
      overview.push(row);
    }
    const sheets: Sheet[] = [
      { ...anomalySpec!, rows: found.map((f) => f.row) },
      { ...overviewSpec!, rows: overview },
    ];
    return sheets;
  },
};

function anomalyOrder(metrics: readonly AnomalyMetric[]): AnomalyMetric[] {
  const order: AnomalyMetric[] = ['impressions', 'clicks', 'cost', 'conversions'];
  return order.filter((m) => metrics.includes(m));
}
