/**
 * The shape of a report implementation. A report is data in, sheets out, through pure functions, so the same code
 * runs in a piscina thread (map), on the main thread (merge, finalize) and in a plain loop (tests, benchmark):
 *
 *   plan(params, env) → plan            resolved dates and thresholds; plain data, sent to threads with each batch
 *   queries(plan)     → [{id, query}]   what to fetch from the ad platform
 *   map(batch, queryId, plan) → partial      one batch of one query (runs in a thread)
 *   merge(a, b, plan) → partial              associative and commutative: partials arrive in any order
 *   finalize(partial, plan) → sheets         rows in column order, as declared by sheets(plan)
 *
 * Partials are plain data (arrays, typed arrays, no classes) sized by what they aggregate (campaigns, days, distinct
 * n-grams, a top-N list), never by rows. `merge` owns both arguments: it may reuse and return either.
 * Sums are kept as integers (money and conversions in millionths), so merging in any order gives identical results.
 */
import type { ReportQuery } from '@ppc/lib/ads';
import type { ReportTypeId } from '@ppc/proto';
import type { ColumnBatch } from './batch.ts';

/** How an output module formats a column. `percent` cells are fractions (0.25 is 25%); `date` cells `YYYY-MM-DD`. */
export type SheetColumnType = 'string' | 'integer' | 'number' | 'money' | 'percent' | 'date' | 'url';
export type SheetCell = string | number | null;

export interface SheetColumn {
  key: string;
  header: string;
  type: SheetColumnType;
}

export interface SheetSpec {
  name: string;
  columns: SheetColumn[];
}

export interface Sheet extends SheetSpec {
  /** Cells in column order. */
  rows: SheetCell[][];
  /** The last row is a totals row (an output module may set it in bold). */
  totalsRow?: boolean;
}

export interface QuerySpec {
  /** Names the query to `map`, which may receive batches of several queries. */
  id: string;
  query: ReportQuery;
}

export interface ReportEnv {
  /** The account's current calendar day (`YYYY-MM-DD` in its time zone); periods resolve against it. */
  today: string;
}

export interface ReportDefinition<P = unknown, C = unknown, A = unknown> {
  readonly id: ReportTypeId;
  plan(params: P, env: ReportEnv): C;
  queries(plan: C): QuerySpec[];
  sheets(plan: C): SheetSpec[];
  /** The partial of no rows. */
  empty(plan: C): A;
  map(batch: ColumnBatch, queryId: string, plan: C): A;
  merge(a: A, b: A, plan: C): A;
  finalize(partial: A, plan: C): Sheet[];
}
