import type { CellValue, Column, ColumnType, ReportQuery } from './types.ts';

/** Money fields Google Ads reports in micros without saying so in the name. */
const MICROS_WITHOUT_SUFFIX = new Set([
  'metrics.average_cpc',
  'metrics.average_cpm',
  'metrics.average_cost',
  'metrics.cost_per_conversion',
  'metrics.cost_per_all_conversions',
]);
const INTEGER_METRICS = new Set([
  'metrics.impressions',
  'metrics.clicks',
  'metrics.interactions',
  'metrics.engagements',
  'metrics.video_views',
]);

/** The column a GAQL field becomes: its type, and `_micros` dropped from money columns. */
export function columnFor(field: string): Column {
  const last = field.slice(field.lastIndexOf('.') + 1);
  let type: ColumnType;
  let name = field;
  if (field.endsWith('_micros')) {
    type = 'money';
    name = field.slice(0, -'_micros'.length);
  } else if (MICROS_WITHOUT_SUFFIX.has(field)) type = 'money';
  else if (INTEGER_METRICS.has(field) || last === 'level' || last === 'quality_score') type = 'integer';
  else if (field.startsWith('metrics.')) type = 'number';
  else if (last === 'id' || last === 'criterion_id') type = 'id';
  else if (field === 'segments.date') type = 'date';
  else if (last.endsWith('urls')) type = 'string[]';
  else if (['manager', 'negative', 'hidden', 'test_account'].includes(last)) type = 'boolean';
  else if (last === 'status' || last.endsWith('_type') || last === 'type') type = 'enum';
  else type = 'string';
  return { name, field, type };
}

export function schemaFor(query: ReportQuery): Column[] {
  return query.select.map(columnFor);
}

function camel(s: string): string {
  return s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Reads one column out of a GoogleAdsRow (REST JSON: lowerCamelCase, int64 as strings, unset fields omitted).
 * Unset metrics read as 0, unset booleans as false, unset lists as [], anything else unset as null.
 */
export function accessorFor(col: Column): (row: unknown) => CellValue {
  const path = jsonPath(col.field);
  const cell = cellFor(col);
  return (row) => {
    let cur = row;
    for (const key of path) {
      if (cur === null || typeof cur !== 'object') return cell(undefined);
      cur = (cur as Record<string, unknown>)[key];
    }
    return cell(cur);
  };
}

/** A column's cell from the JSON value at its path (`undefined` when the field is absent); see accessorFor. */
export function cellFor(col: Column): (v: unknown) => CellValue {
  const isMetric = col.field.startsWith('metrics.');
  switch (col.type) {
    case 'money':
      return (v) => (v === undefined || v === null ? (isMetric ? 0 : null) : Number(v) / 1_000_000);
    case 'integer':
    case 'number':
      return (v) => (v === undefined || v === null ? (isMetric ? 0 : null) : Number(v));
    case 'boolean':
      return (v) => v === true;
    case 'string[]':
      return (v) => (Array.isArray(v) ? (v as string[]) : []);
    default:
      return (v) => (v === undefined || v === null ? null : String(v));
  }
}

/** A GAQL field's path in REST JSON (lowerCamelCase segments). */
export function jsonPath(field: string): string[] {
  return field.split('.').map(camel);
}

/** The GAQL text of a structured query. */
export function toGaql(q: ReportQuery): string {
  const where = [...(q.where ?? [])];
  if (q.dateRange) {
    const ok = /^\d{4}-\d{2}-\d{2}$/;
    if (!ok.test(q.dateRange.start) || !ok.test(q.dateRange.end)) {
      throw new TypeError(`dateRange must be YYYY-MM-DD, got ${q.dateRange.start}..${q.dateRange.end}`);
    }
    where.push(`segments.date BETWEEN '${q.dateRange.start}' AND '${q.dateRange.end}'`);
  }
  let s = `SELECT ${q.select.join(', ')} FROM ${q.from}`;
  if (where.length) s += ` WHERE ${where.join(' AND ')}`;
  if (q.limit !== undefined) s += ` LIMIT ${Math.floor(q.limit)}`;
  return s;
}
