/**
 * The report types the worker implements, by id (parameter schemas live in `@ppc/proto`'s `reportTypes`).
 * Each is a set of pure functions (see types.ts); `processing/` runs them over an ad platform's data.
 */
import type { ReportTypeId } from '@ppc/proto';
import { accountPerformance } from './account-performance.ts';
import { anomalies } from './anomalies.ts';
import { budgetPacing } from './budget-pacing.ts';
import { keywordHealth } from './keyword-health.ts';
import { searchTerms } from './search-terms.ts';
import type { ReportDefinition } from './types.ts';

export const reportDefinitions = {
  'account-performance': accountPerformance,
  'search-terms': searchTerms,
  'keyword-health': keywordHealth,
  'budget-pacing': budgetPacing,
  anomalies,
} as const satisfies Record<ReportTypeId, { id: ReportTypeId }>;

/** The implementation of a report type, with its types erased (callers pass plans and partials through unchanged). */
export function reportDefinition(id: ReportTypeId): ReportDefinition {
  const def = reportDefinitions[id];
  if (!def) throw new RangeError(`no implementation for report type ${JSON.stringify(id)}`);
  return def as unknown as ReportDefinition;
}

export { accountPerformance, anomalies, budgetPacing, keywordHealth, searchTerms };
export type { AccountPerformancePartial, AccountPerformancePlan } from './account-performance.ts';
export type { AnomaliesPartial, AnomaliesPlan } from './anomalies.ts';
export {
  type BatchAllocator,
  BatchPacker,
  ColumnBatch,
  openBatch,
  ownBuffer,
  type PackedBatch,
  type PackedColumn,
  packRows,
  REPORT_COLUMN_MISSING,
  TextColumn,
} from './batch.ts';
export type { BudgetPacingPartial, BudgetPacingPlan } from './budget-pacing.ts';
export type { KeywordHealthPartial, KeywordHealthPlan } from './keyword-health.ts';
export { NgramCounter } from './ngrams.ts';
export type { SearchTermsPartial, SearchTermsPlan } from './search-terms.ts';
export type {
  QuerySpec,
  ReportDefinition,
  ReportEnv,
  Sheet,
  SheetCell,
  SheetColumn,
  SheetColumnType,
  SheetSpec,
} from './types.ts';
