/**
 * The standard PPC metrics: five sums per row (impressions, clicks, cost, conversions, conversion value) and the
 * ratios derived from them. Sums are integers — cost, conversions and value in millionths — so they add up exactly,
 * in any order; ratios are computed from sums at the end, never averaged.
 */
import type { ColumnBatch } from './batch.ts';
import type { SheetCell, SheetColumn } from './types.ts';

export const IMPRESSIONS = 0;
export const CLICKS = 1;
export const COST = 2;
export const CONVERSIONS = 3;
export const VALUE = 4;
export const KPI_WIDTH = 5;

/** The metric fields a query selects for {@link kpiReader}. */
export const KPI_FIELDS = [
  'metrics.impressions',
  'metrics.clicks',
  'metrics.cost_micros',
  'metrics.conversions',
  'metrics.conversions_value',
] as const;

export const micros = (x: number): number => (Number.isFinite(x) ? Math.round(x * 1e6) : 0);
export const units = (m: number): number => m / 1e6;
const count = (x: number): number => (Number.isFinite(x) ? x : 0);

/** Adds row `r`'s five metrics into `into` at `offset`. */
export type KpiReader = (r: number, into: Float64Array, offset: number) => void;

export function kpiReader(batch: ColumnBatch): KpiReader {
  const impressions = batch.number('metrics.impressions');
  const clicks = batch.number('metrics.clicks');
  const cost = batch.number('metrics.cost');
  const conversions = batch.number('metrics.conversions');
  const value = batch.number('metrics.conversions_value');
  return (r, into, o) => {
    into[o + IMPRESSIONS]! += count(impressions[r]!);
    into[o + CLICKS]! += count(clicks[r]!);
    into[o + COST]! += micros(cost[r]!);
    into[o + CONVERSIONS]! += micros(conversions[r]!);
    into[o + VALUE]! += micros(value[r]!);
  };
}

/** Element-wise `a += b` over `n` values. */
export function addInto(a: Float64Array, b: Float64Array, n = a.length, ao = 0, bo = 0): void {
  for (let i = 0; i < n; i++) a[ao + i]! += b[bo + i]!;
}

const ratio = (a: number, b: number): number | null => (b === 0 ? null : a / b);

/** The nine reported KPIs of a sums vector, in {@link kpiColumns} order. */
export function kpiValues(s: ArrayLike<number>, o = 0): Array<number | null> {
  const impressions = s[o + IMPRESSIONS]!;
  const clicks = s[o + CLICKS]!;
  const cost = units(s[o + COST]!);
  const conversions = units(s[o + CONVERSIONS]!);
  const value = units(s[o + VALUE]!);
  return [
    impressions,
    clicks,
    ratio(clicks, impressions),
    cost,
    ratio(cost, clicks),
    conversions,
    ratio(cost, conversions),
    value,
    ratio(value, cost),
  ];
}

export const KPI_COLUMNS: SheetColumn[] = [
  { key: 'impressions', header: 'Impressions', type: 'integer' },
  { key: 'clicks', header: 'Clicks', type: 'integer' },
  { key: 'ctr', header: 'CTR', type: 'percent' },
  { key: 'cost', header: 'Cost', type: 'money' },
  { key: 'cpc', header: 'Avg. CPC', type: 'money' },
  { key: 'conversions', header: 'Conversions', type: 'number' },
  { key: 'cpa', header: 'Cost / conv.', type: 'money' },
  { key: 'value', header: 'Conv. value', type: 'money' },
  { key: 'roas', header: 'Conv. value / cost', type: 'number' },
];

export const CHANGE_COLUMNS: SheetColumn[] = KPI_COLUMNS.map((c) => ({
  key: `${c.key}Change`,
  header: `${c.header} Δ`,
  type: 'percent',
}));

/** Relative change of each KPI (a fraction; null where the comparison value is 0 or undefined). */
export function kpiChanges(current: SheetCell[], previous: SheetCell[]): SheetCell[] {
  return current.map((c, i) => {
    const p = previous[i];
    if (typeof c !== 'number' || typeof p !== 'number' || p === 0) return null;
    return (c - p) / p;
  });
}
