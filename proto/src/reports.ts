/**
 * Report types: what a user can order, and with which parameters. The gateway validates a job's parameters with
 * {@link validateReportParams} when the job is saved; the report worker validates them again (with defaults applied)
 * when the task arrives, because a task may have been written by an older gateway. The worker implements each type
 * (queries, sheets, processing) under `services/report-worker/src/reports/`.
 *
 * Conventions of every parameter schema: money thresholds are in the account's currency units; dates are calendar
 * days in the account's time zone (`YYYY-MM-DD`); a period is a preset relative to the account's "today" or an
 * explicit inclusive range; every number has limits, every optional value a default, unknown keys are refused.
 */
import { type Static, type TLiteral, type TSchema, type TUnion, Type } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import type { ValueError } from '@sinclair/typebox/errors';
import { Value } from '@sinclair/typebox/value';

const DATE_PATTERN = '^\\d{4}-\\d{2}-\\d{2}$';
const DateString = Type.String({ pattern: DATE_PATTERN, description: 'calendar day, YYYY-MM-DD' });

/** Presets as on Google Ads (`DURING`): `last_N_days` ends yesterday; `this_month` runs to today inclusive. */
export const periodPresets = [
  'yesterday',
  'last_7_days',
  'last_14_days',
  'last_30_days',
  'last_90_days',
  'this_month',
  'last_month',
] as const;
export type PeriodPreset = (typeof periodPresets)[number];

/** Longest explicit range a report may ask for (three years). */
export const MAX_PERIOD_DAYS = 1096;

const PeriodRange = Type.Object({ start: DateString, end: DateString }, { additionalProperties: false });

/** A union of string literals, typed as such (mapping over a tuple would widen the static type to string). */
function literals<const T extends readonly string[]>(
  values: T,
  opts: { default?: T[number]; description?: string } = {},
): TUnion<TLiteral<T[number]>[]> {
  return Type.Union(
    values.map((v) => Type.Literal(v)),
    opts,
  ) as TUnion<TLiteral<T[number]>[]>;
}

function periodSchema(def: PeriodPreset, description = 'the days reported') {
  return Type.Union([...periodPresets.map((p) => Type.Literal(p)), PeriodRange], {
    default: def,
    description: `${description}: a preset (${periodPresets.join(', ')}) or {start, end}, inclusive`,
  }) as TUnion<Array<TLiteral<PeriodPreset> | typeof PeriodRange>>;
}

export const Period = periodSchema('last_30_days');
export type Period = Static<typeof Period>;

export const reportOutputKinds = ['sheets', 'xlsx', 'csv'] as const;
export type ReportOutputKind = (typeof reportOutputKinds)[number];

const money = (def: number, description: string) =>
  Type.Number({ minimum: 0, maximum: 1e12, default: def, description: `${description} (account currency)` });
const int = (def: number, minimum: number, maximum: number, description: string) =>
  Type.Integer({ minimum, maximum, default: def, description });
const bool = (def: boolean, description: string) => Type.Boolean({ default: def, description });
const oneOf = <const T extends readonly string[]>(values: T, def: T[number], description: string) =>
  literals(values, { default: def, description });

const AccountPerformanceParams = Type.Object(
  {
    period: periodSchema('last_30_days'),
    compareTo: oneOf(
      ['previous_period', 'previous_year', 'none'] as const,
      'previous_period',
      'period the change columns compare against',
    ),
    byDevice: bool(false, 'add a device breakdown (needs segments.device; the demo platform has no devices)'),
  },
  { additionalProperties: false },
);

const SearchTermsParams = Type.Object(
  {
    period: periodSchema('last_30_days'),
    minCost: money(10, 'a negative-keyword candidate has at least this cost'),
    minClicks: int(5, 0, 1_000_000, 'a negative-keyword candidate has at least this many clicks'),
    maxConversions: Type.Number({
      minimum: 0,
      maximum: 1_000_000,
      default: 0,
      description: 'a negative-keyword candidate has at most this many conversions',
    }),
    includeExcluded: bool(false, 'also list terms already excluded (status EXCLUDED or ADDED_EXCLUDED) as candidates'),
    candidatesLimit: int(1000, 1, 50_000, 'rows of the candidates sheet, most expensive first'),
    ngramSizes: Type.Array(Type.Integer({ minimum: 1, maximum: 3 }), {
      minItems: 1,
      maxItems: 3,
      uniqueItems: true,
      default: [1, 2, 3],
      description: 'n-gram sizes to aggregate, one sheet each',
    }),
    ngramLimit: int(1000, 1, 50_000, 'rows of each n-gram sheet, most expensive first'),
  },
  { additionalProperties: false },
);

const KeywordHealthParams = Type.Object(
  {
    period: periodSchema('last_30_days'),
    lowQualityScore: int(4, 1, 10, 'quality scores at or below this are flagged'),
    minCostWithoutConversions: money(10, 'keywords with no conversions are flagged from this cost on'),
    includePaused: bool(false, 'also check paused keywords, ad groups and campaigns'),
    duplicates: oneOf(
      ['same_match_type', 'any_match_type'] as const,
      'same_match_type',
      'keywords in several ad groups count as duplicates with the same match type only, or with any',
    ),
    limit: int(10_000, 1, 200_000, 'rows of the issues sheet, most expensive first'),
  },
  { additionalProperties: false },
);

const BudgetPacingParams = Type.Object(
  {
    month: Type.String({
      pattern: '^(current|\\d{4}-(0[1-9]|1[0-2]))$',
      default: 'current',
      description: "'current' or YYYY-MM",
    }),
    accountMonthlyBudget: Type.Optional(
      Type.Number({ minimum: 0, maximum: 1e12, description: "the account's monthly budget (account currency)" }),
    ),
    campaignMonthlyBudgets: Type.Record(Type.RegExp(/^\d{1,20}$/), Type.Number({ minimum: 0, maximum: 1e12 }), {
      additionalProperties: false,
      maxProperties: 10_000,
      default: {},
      description: 'monthly budget per campaign id (digits only; account currency)',
    }),
    useDailyBudgets: bool(
      false,
      "use each campaign's daily budget from the platform (campaign_budget.amount_micros; not on the demo platform) where no monthly budget is given",
    ),
    trendDays: int(7, 1, 28, 'the projection extends the average daily spend of this many most recent days'),
    cappedShare: Type.Number({
      minimum: 0.5,
      maximum: 1,
      default: 0.95,
      description: 'a day counts as capped when its spend reaches this share of the daily budget',
    }),
    limitedMinDays: int(3, 1, 28, 'a campaign is limited by budget when capped on this many of the recent days'),
    tolerance: Type.Number({
      minimum: 0,
      maximum: 1,
      default: 0.1,
      description: 'projected spend within ±this share of the budget is on track',
    }),
  },
  { additionalProperties: false },
);

export const anomalyMetrics = ['impressions', 'clicks', 'cost', 'conversions'] as const;
export type AnomalyMetric = (typeof anomalyMetrics)[number];

const AnomaliesParams = Type.Object(
  {
    period: periodSchema('last_7_days', 'the days checked'),
    baselineWeeks: int(4, 2, 12, 'each day is compared with the same weekday of this many preceding weeks'),
    baseline: oneOf(['median', 'mean'] as const, 'median', 'how the same-weekday values make the baseline'),
    metrics: Type.Array(literals(anomalyMetrics), {
      minItems: 1,
      maxItems: anomalyMetrics.length,
      uniqueItems: true,
      default: ['clicks', 'cost', 'conversions'],
    }),
    thresholdPercent: Type.Number({
      minimum: 5,
      maximum: 10_000,
      default: 50,
      description: 'a day is an anomaly when it deviates from its baseline by at least this percentage',
    }),
    minBaseline: Type.Object(
      {
        impressions: Type.Number({ minimum: 0, default: 100 }),
        clicks: Type.Number({ minimum: 0, default: 10 }),
        cost: Type.Number({ minimum: 0, default: 10 }),
        conversions: Type.Number({ minimum: 0, default: 2 }),
      },
      {
        additionalProperties: false,
        default: {},
        description: 'smaller baselines are too noisy to judge and are skipped (cost in account currency)',
      },
    ),
    byCampaign: bool(true, 'check each campaign as well as the account'),
  },
  { additionalProperties: false },
);

export interface ReportTypeSpec<S extends TSchema = TSchema> {
  /** Also the last token of the task subject `tasks.report.<region>.<id>`. */
  readonly id: string;
  readonly name: string;
  readonly description: string;
  readonly params: S;
  readonly outputs: readonly ReportOutputKind[];
  /** Sheets the report writes (some only with certain parameters). */
  readonly sheets: readonly string[];
  /** A run of this type is aborted after this long (fetching, processing and writing). */
  readonly timeLimitMs: number;
}

function spec<S extends TSchema>(s: ReportTypeSpec<S>): ReportTypeSpec<S> {
  return s;
}

export const reportTypes = {
  'account-performance': spec({
    id: 'account-performance',
    name: 'Account performance',
    description:
      'KPIs (impressions, clicks, CTR, cost, CPC, conversions, CPA, conversion value, ROAS) by day, campaign and device, with the change against a comparison period and totals.',
    params: AccountPerformanceParams,
    outputs: reportOutputKinds,
    sheets: ['Summary', 'By day', 'By campaign', 'By device'],
    timeLimitMs: 15 * 60_000,
  }),
  'search-terms': spec({
    id: 'search-terms',
    name: 'Search terms and n-grams',
    description:
      'Search terms that cost money without converting (negative keyword candidates), and cost and conversions aggregated by the 1-, 2- and 3-word phrases of all search terms.',
    params: SearchTermsParams,
    outputs: reportOutputKinds,
    sheets: ['Summary', 'Negative candidates', '1-grams', '2-grams', '3-grams'],
    timeLimitMs: 30 * 60_000,
  }),
  'keyword-health': spec({
    id: 'keyword-health',
    name: 'Keyword health',
    description:
      'Keywords with a low quality score, no impressions, or cost without conversions, and keywords duplicated across ad groups.',
    params: KeywordHealthParams,
    outputs: reportOutputKinds,
    sheets: ['Summary', 'Keyword issues', 'Duplicates'],
    timeLimitMs: 15 * 60_000,
  }),
  'budget-pacing': spec({
    id: 'budget-pacing',
    name: 'Budget pacing',
    description:
      'Month-to-date spend against budget per campaign, the month-end spend projected from recent daily spend, and campaigns limited by their budget.',
    params: BudgetPacingParams,
    outputs: reportOutputKinds,
    sheets: ['Pacing', 'Daily spend'],
    timeLimitMs: 10 * 60_000,
  }),
  anomalies: spec({
    id: 'anomalies',
    name: 'Anomalies',
    description:
      'Days whose clicks, cost or conversions deviate from the same weekday of the preceding weeks by more than a threshold, for the account and each campaign.',
    params: AnomaliesParams,
    outputs: reportOutputKinds,
    sheets: ['Anomalies', 'Daily overview'],
    timeLimitMs: 10 * 60_000,
  }),
} as const;

export type ReportTypeId = keyof typeof reportTypes;
export const reportTypeIds = Object.keys(reportTypes) as ReportTypeId[];
/** Parameters of a report type after validation: every default applied. */
export type ReportParams<T extends ReportTypeId> = Static<(typeof reportTypes)[T]['params']>;
export type AccountPerformanceParams = ReportParams<'account-performance'>;
export type SearchTermsParams = ReportParams<'search-terms'>;
export type KeywordHealthParams = ReportParams<'keyword-health'>;
export type BudgetPacingParams = ReportParams<'budget-pacing'>;
export type AnomaliesParams = ReportParams<'anomalies'>;

export function isReportTypeId(id: string): id is ReportTypeId {
  return Object.hasOwn(reportTypes, id);
}

/** Parameters refused: `field` is the JSON pointer of the offending value (`/period/start`), '' for the whole. */
export class ReportParamsError extends Error {
  override name = 'ReportParamsError';
  readonly code = 'REPORT_PARAMS_INVALID';
  readonly reportType: string;
  readonly field: string;
  readonly reason: string;
  constructor(reportType: string, field: string, reason: string) {
    super(`${reportType}: ${field || '(parameters)'}: ${reason}`);
    this.reportType = reportType;
    this.field = field;
    this.reason = reason;
  }
}

const compiled = new Map<string, TypeCheck<TSchema>>();

/**
 * Checks `params` against the type's schema and returns a copy with every default applied; throws
 * {@link ReportParamsError} naming the first bad field. Never mutates `params`.
 */
export function validateReportParams<T extends ReportTypeId>(type: T, params: unknown): ReportParams<T>;
export function validateReportParams(type: string, params: unknown): ReportParams<ReportTypeId>;
export function validateReportParams(type: string, params: unknown): unknown {
  if (!isReportTypeId(type)) {
    throw new ReportParamsError(type, '', `unknown report type (known: ${reportTypeIds.join(', ')})`);
  }
  const schema = reportTypes[type].params as TSchema;
  const input = params === undefined || params === null ? {} : params;
  if (typeof input !== 'object' || Array.isArray(input)) {
    throw new ReportParamsError(type, '', 'parameters must be an object');
  }
  const value = Value.Default(schema, Value.Clone(input));
  let check = compiled.get(type);
  if (!check) {
    check = TypeCompiler.Compile(schema);
    compiled.set(type, check);
  }
  if (!check.Check(value)) {
    const first = check.Errors(value).First();
    const [field, reason] = first ? explain(first) : ['', 'invalid'];
    throw new ReportParamsError(type, field, reason);
  }
  checkSemantics(type, value as Record<string, unknown>);
  return value;
}

/** The most specific problem of a schema error: inside a union, the variant the value was evidently meant for. */
function explain(err: ValueError): [string, string] {
  if (err.errors.length > 0) {
    let best: ValueError | undefined;
    for (const variant of err.errors) {
      const e = variant.First();
      if (e && e.path.length > err.path.length && (!best || e.path.length > best.path.length)) best = e;
    }
    if (best) return explain(best);
    const literals = err.errors.length > 0 ? literalOptions(err.schema) : [];
    if (literals.length > 0) {
      const objectToo = (err.schema.anyOf as TSchema[] | undefined)?.some((s) => s.type === 'object');
      return [
        err.path,
        `expected one of ${literals.map((l) => JSON.stringify(l)).join(', ')}${objectToo ? ' or {start, end}' : ''}, got ${JSON.stringify(err.value)}`,
      ];
    }
  }
  if (err.message.startsWith('Unexpected property')) {
    const topLevel = err.path.lastIndexOf('/') === 0;
    return [err.path, topLevel ? 'unknown parameter' : 'unexpected key'];
  }
  return [err.path, `${err.message}, got ${JSON.stringify(err.value)}`];
}

function literalOptions(schema: TSchema): string[] {
  const variants = (schema.anyOf as TSchema[] | undefined) ?? [];
  return variants.filter((v) => typeof v.const === 'string').map((v) => v.const as string);
}

function checkSemantics(type: ReportTypeId, p: Record<string, unknown>): void {
  const period = p.period as Period | undefined;
  if (period && typeof period === 'object') {
    for (const key of ['start', 'end'] as const) {
      if (!isCalendarDay(period[key])) {
        throw new ReportParamsError(type, `/period/${key}`, `${JSON.stringify(period[key])} is not a calendar day`);
      }
    }
    if (period.start > period.end) {
      throw new ReportParamsError(type, '/period/end', `ends (${period.end}) before it starts (${period.start})`);
    }
    const days = dayNumber(period.end) - dayNumber(period.start) + 1;
    if (days > MAX_PERIOD_DAYS) {
      throw new ReportParamsError(type, '/period', `${days} days is longer than the limit of ${MAX_PERIOD_DAYS}`);
    }
  }
  if (type === 'budget-pacing') {
    const days = p.trendDays as number;
    if ((p.limitedMinDays as number) > days) {
      throw new ReportParamsError(type, '/limitedMinDays', `must not exceed trendDays (${days})`);
    }
  }
}

// ---- calendar days ---------------------------------------------------------------------------------------------

/** Days since 1970-01-01 of a `YYYY-MM-DD` day. */
export function dayNumber(date: string): number {
  return Math.floor(Date.parse(`${date}T00:00:00Z`) / 86_400_000);
}

/** `YYYY-MM-DD` of a day number. */
export function dayString(day: number): string {
  return new Date(day * 86_400_000).toISOString().slice(0, 10);
}

export function isCalendarDay(s: unknown): s is string {
  return typeof s === 'string' && new RegExp(DATE_PATTERN).test(s) && dayString(dayNumber(s)) === s;
}

/** First and last day of the month `day` falls in. */
export function monthOf(day: number): { start: number; end: number } {
  const d = new Date(day * 86_400_000);
  const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1) / 86_400_000;
  const end = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) / 86_400_000 - 1;
  return { start, end };
}

/** The inclusive days of a period, as seen on `today` (the account's current calendar day). */
export function resolvePeriod(period: Period, today: string): { start: string; end: string } {
  if (!isCalendarDay(today)) throw new RangeError(`today must be YYYY-MM-DD, got ${JSON.stringify(today)}`);
  if (typeof period === 'object') return { start: period.start, end: period.end };
  const t = dayNumber(today);
  const range = (from: number, to: number) => ({ start: dayString(from), end: dayString(to) });
  switch (period) {
    case 'yesterday':
      return range(t - 1, t - 1);
    case 'last_7_days':
      return range(t - 7, t - 1);
    case 'last_14_days':
      return range(t - 14, t - 1);
    case 'last_30_days':
      return range(t - 30, t - 1);
    case 'last_90_days':
      return range(t - 90, t - 1);
    case 'this_month':
      return range(monthOf(t).start, t);
    case 'last_month': {
      const prev = monthOf(monthOf(t).start - 1);
      return range(prev.start, prev.end);
    }
  }
}
