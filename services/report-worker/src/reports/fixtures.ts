/**
 * Test support: run a report's pure functions in this thread over hand-written rows, split into batches and merged
 * in a chosen order, and read sheets as objects. Rows are written as `{ gaqlField: value }` (money in currency
 * units, as the connector delivers it) and laid out in the report's own query's column order.
 */
import { type CellValue, columnFor } from '@ppc/lib/ads';
import { type ReportTypeId, validateReportParams } from '@ppc/proto';
import { openBatch, type PackedBatch, packRows } from './batch.ts';
import { reportDefinition } from './index.ts';
import type { Sheet, SheetCell } from './types.ts';

export type FieldRow = Record<string, CellValue>;

export function packFields(select: readonly string[], rows: readonly FieldRow[]): PackedBatch {
  return packRows(
    select.map(columnFor),
    rows.map((r) => select.map((f) => (f in r ? r[f]! : null))),
  );
}

/** A deterministic shuffle (mulberry32), so a failing order can be replayed from its seed. */
export function shuffle<T>(items: readonly T[], seed: number): T[] {
  let s = seed >>> 0;
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

export interface LocalRunOptions {
  /** Rows per batch (default: all rows of a query in one batch). */
  batchRows?: number;
  /** Merge partials in a shuffled order with this seed, as a balanced tree when `tree` is set; default in order. */
  seed?: number;
  tree?: boolean;
}

/** Runs a report in this thread: validate, plan, map each batch, merge, finalize. */
export function runLocally(
  type: ReportTypeId,
  params: unknown,
  today: string,
  rowsByQuery: Record<string, readonly FieldRow[]>,
  opts: LocalRunOptions = {},
): Sheet[] {
  const def = reportDefinition(type);
  const plan = def.plan(validateReportParams(type, params), { today });
  const partials: unknown[] = [];
  for (const { id, query } of def.queries(plan)) {
    const rows = rowsByQuery[id] ?? [];
    const size = opts.batchRows ?? Math.max(1, rows.length);
    for (let i = 0; i < rows.length; i += size) {
      partials.push(def.map(openBatch(packFields(query.select, rows.slice(i, i + size))), id, plan));
    }
  }
  let order = opts.seed === undefined ? partials : shuffle(partials, opts.seed);
  if (opts.tree) {
    while (order.length > 1) {
      const next: unknown[] = [];
      for (let i = 0; i < order.length; i += 2) {
        next.push(i + 1 < order.length ? def.merge(order[i], order[i + 1], plan) : order[i]);
      }
      order = next;
    }
  }
  const merged = order.reduce((a, b) => def.merge(a, b, plan), def.empty(plan));
  return def.finalize(merged, plan);
}

/** A sheet's rows as objects keyed by column key. */
export function table(sheets: readonly Sheet[], name: string): Array<Record<string, SheetCell>> {
  const sheet = sheets.find((s) => s.name === name);
  if (!sheet) throw new Error(`no sheet ${JSON.stringify(name)} (sheets: ${sheets.map((s) => s.name).join(', ')})`);
  return sheet.rows.map((row) => Object.fromEntries(sheet.columns.map((c, i) => [c.key, row[i] ?? null])));
}
