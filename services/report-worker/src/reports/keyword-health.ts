/**
 * Keyword health. Two queries joined on (ad group id, criterion id): the keywords themselves (ad_group_criterion:
 * text, match type, status, quality score) and their metrics for the period (keyword_view, summed over the period).
 * Keywords come from their own query because a platform may leave keywords without impressions out of a metrics
 * query, and those are exactly the ones to find. Flags: quality score at or below a threshold, no impressions, cost
 * without conversions, and the same keyword text (and match type) in more than one ad group.
 */
import { type KeywordHealthParams, resolvePeriod } from '@ppc/proto';
import type { ColumnBatch } from './batch.ts';
import { emptyKeyed, type Keyed, KeyedBuilder, mergeKeyed } from './keyed.ts';
import { CLICKS, CONVERSIONS, COST, IMPRESSIONS, KPI_FIELDS, KPI_WIDTH, kpiReader, micros, units } from './kpi.ts';
import type { ReportDefinition, Sheet, SheetCell, SheetSpec } from './types.ts';

export interface KeywordHealthPlan {
  start: string;
  end: string;
  lowQualityScore: number;
  minCostMicros: number;
  includePaused: boolean;
  duplicates: KeywordHealthParams['duplicates'];
  limit: number;
}

/** [key, campaign id, campaign, ad group id, ad group, text, match type, status, quality score] */
export type KeywordRow = [string, string, string, string, string, string, string, string, number | null];

export interface KeywordHealthPartial {
  keywords: KeywordRow[];
  /** Metric sums per keyword key `<ad group id>~<criterion id>`. */
  metrics: Keyed;
}

const keyOf = (adGroupId: string, criterionId: string): string => `${adGroupId}~${criterionId}`;
const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const normalise = (text: string): string => text.toLowerCase().trim().split(/\s+/).join(' ');

export const ISSUE = {
  lowQuality: 'Low quality score',
  noImpressions: 'No impressions',
  costWithoutConversions: 'Cost without conversions',
  duplicate: 'Duplicate',
} as const;

function specs(): SheetSpec[] {
  return [
    {
      name: 'Summary',
      columns: [
        { key: 'check', header: 'Check', type: 'string' },
        { key: 'keywords', header: 'Keywords', type: 'integer' },
        { key: 'cost', header: 'Cost', type: 'money' },
      ],
    },
    {
      name: 'Keyword issues',
      columns: [
        { key: 'campaign', header: 'Campaign', type: 'string' },
        { key: 'adGroup', header: 'Ad group', type: 'string' },
        { key: 'keyword', header: 'Keyword', type: 'string' },
        { key: 'matchType', header: 'Match type', type: 'string' },
        { key: 'status', header: 'Status', type: 'string' },
        { key: 'qualityScore', header: 'Quality score', type: 'integer' },
        { key: 'impressions', header: 'Impressions', type: 'integer' },
        { key: 'clicks', header: 'Clicks', type: 'integer' },
        { key: 'cost', header: 'Cost', type: 'money' },
        { key: 'conversions', header: 'Conversions', type: 'number' },
        { key: 'issues', header: 'Issues', type: 'string' },
      ],
    },
    {
      name: 'Duplicates',
      columns: [
        { key: 'keyword', header: 'Keyword', type: 'string' },
        { key: 'matchTypes', header: 'Match types', type: 'string' },
        { key: 'adGroups', header: 'Ad groups', type: 'integer' },
        { key: 'where', header: 'Where', type: 'string' },
        { key: 'impressions', header: 'Impressions', type: 'integer' },
        { key: 'clicks', header: 'Clicks', type: 'integer' },
        { key: 'cost', header: 'Cost', type: 'money' },
        { key: 'conversions', header: 'Conversions', type: 'number' },
      ],
    },
  ];
}

function compareKeywordRows(a: KeywordRow, b: KeywordRow): number {
  for (let i = 0; i < 8; i++) {
    const c = cmp(a[i] as string, b[i] as string);
    if (c) return c;
  }
  return (a[8] ?? -1) - (b[8] ?? -1);
}

export const keywordHealth: ReportDefinition<KeywordHealthParams, KeywordHealthPlan, KeywordHealthPartial> = {
  id: 'keyword-health',

  plan(params, env) {
    const { start, end } = resolvePeriod(params.period, env.today);
    return {
      start,
      end,
      lowQualityScore: params.lowQualityScore,
      minCostMicros: micros(params.minCostWithoutConversions),
      includePaused: params.includePaused,
      duplicates: params.duplicates,
      limit: params.limit,
    };
  },

  queries(plan) {
    const status = plan.includePaused
      ? ["campaign.status != 'REMOVED'", "ad_group.status != 'REMOVED'", "ad_group_criterion.status != 'REMOVED'"]
      : ["campaign.status = 'ENABLED'", "ad_group.status = 'ENABLED'", "ad_group_criterion.status = 'ENABLED'"];
    return [
      {
        id: 'keywords',
        query: {
          from: 'ad_group_criterion',
          select: [
            'campaign.id',
            'campaign.name',
            'ad_group.id',
            'ad_group.name',
            'ad_group_criterion.criterion_id',
            'ad_group_criterion.keyword.text',
            'ad_group_criterion.keyword.match_type',
            'ad_group_criterion.status',
            'ad_group_criterion.quality_info.quality_score',
          ],
          where: ["ad_group_criterion.type = 'KEYWORD'", 'ad_group_criterion.negative = FALSE', ...status],
        },
      },
      {
        id: 'metrics',
        query: {
          from: 'keyword_view',
          select: ['ad_group.id', 'ad_group_criterion.criterion_id', ...KPI_FIELDS],
          dateRange: { start: plan.start, end: plan.end },
        },
      },
    ];
  },

  sheets: specs,

  empty() {
    return { keywords: [], metrics: emptyKeyed(KPI_WIDTH) };
  },

  map(batch: ColumnBatch, queryId) {
    const groups = batch.text('ad_group.id');
    const criteria = batch.text('ad_group_criterion.criterion_id');
    if (queryId === 'metrics') {
      const read = kpiReader(batch);
      const sums = new KeyedBuilder(KPI_WIDTH, batch.rows);
      for (let r = 0; r < batch.rows; r++) {
        const o = sums.offset(keyOf(groups.at(r) ?? '', criteria.at(r) ?? ''));
        read(r, sums.values, o);
      }
      return { keywords: [], metrics: sums.finish() };
    }
    const campaignIds = batch.text('campaign.id');
    const campaigns = batch.text('campaign.name');
    const groupNames = batch.text('ad_group.name');
    const texts = batch.text('ad_group_criterion.keyword.text');
    const matchTypes = batch.text('ad_group_criterion.keyword.match_type');
    const statuses = batch.text('ad_group_criterion.status');
    const quality = batch.number('ad_group_criterion.quality_info.quality_score');
    const keywords: KeywordRow[] = [];
    for (let r = 0; r < batch.rows; r++) {
      const q = quality[r]!;
      keywords.push([
        keyOf(groups.at(r) ?? '', criteria.at(r) ?? ''),
        campaignIds.at(r) ?? '',
        campaigns.at(r) ?? '',
        groups.at(r) ?? '',
        groupNames.at(r) ?? '',
        texts.at(r) ?? '',
        matchTypes.at(r) ?? '',
        statuses.at(r) ?? '',
        Number.isFinite(q) && q > 0 ? q : null,
      ]);
    }
    return { keywords, metrics: emptyKeyed(KPI_WIDTH) };
  },

  merge(a, b) {
    return {
      keywords: b.keywords.length === 0 ? a.keywords : a.keywords.concat(b.keywords),
      metrics: mergeKeyed(a.metrics, b.metrics),
    };
  },

  finalize(p, plan) {
    const [summarySpec, issuesSpec, duplicatesSpec] = specs();
    const metricsAt = new Map(p.metrics.keys.map((k, i) => [k, i * KPI_WIDTH]));
    const zero = new Float64Array(KPI_WIDTH);
    // One row per keyword key (a platform should send each once; the smallest wins if not, whatever the order).
    const unique = new Map<string, KeywordRow>();
    for (const k of p.keywords) {
      const cur = unique.get(k[0]);
      if (!cur || compareKeywordRows(k, cur) < 0) unique.set(k[0], k);
    }
    const keywords = [...unique.values()].sort(compareKeywordRows);
    const metricOf = (k: KeywordRow): [Float64Array, number] => {
      const o = metricsAt.get(k[0]);
      return o === undefined ? [zero, 0] : [p.metrics.values, o];
    };

    // Duplicates: the same normalised text (and match type, unless any counts) in two or more ad groups.
    const groups = new Map<string, KeywordRow[]>();
    for (const k of keywords) {
      const g = normalise(k[5]) + (plan.duplicates === 'same_match_type' ? `\u0000${k[6]}` : '');
      const list = groups.get(g);
      if (list) list.push(k);
      else groups.set(g, [k]);
    }
    const duplicateOf = new Map<string, number>();
    const duplicateRows: Array<{ row: SheetCell[]; adGroups: number; cost: number; keyword: string }> = [];
    for (const list of groups.values()) {
      const adGroups = new Set(list.map((k) => k[3])).size;
      if (adGroups < 2) continue;
      const sums = new Float64Array(KPI_WIDTH);
      for (const k of list) {
        duplicateOf.set(k[0], adGroups);
        const [v, o] = metricOf(k);
        for (let i = 0; i < KPI_WIDTH; i++) sums[i]! += v[o + i]!;
      }
      const keyword = normalise(list[0]![5]);
      duplicateRows.push({
        keyword,
        adGroups,
        cost: sums[COST]!,
        row: [
          keyword,
          [...new Set(list.map((k) => k[6]))].sort().join(', '),
          adGroups,
          [
            ...new Set(list.map((k) => `${k[2]} › ${k[4]}${plan.duplicates === 'any_match_type' ? ` (${k[6]})` : ''}`)),
          ].join('; '),
          sums[IMPRESSIONS]!,
          sums[CLICKS]!,
          units(sums[COST]!),
          units(sums[CONVERSIONS]!),
        ],
      });
    }
    duplicateRows.sort(
      (a, b) =>
        b.adGroups - a.adGroups ||
        b.cost - a.cost ||
        cmp(a.keyword, b.keyword) ||
        cmp(String(a.row[1]), String(b.row[1])),
    );

    const counts = {
      lowQuality: [0, 0],
      noImpressions: [0, 0],
      costWithoutConversions: [0, 0],
      duplicate: [0, 0],
      any: [0, 0],
    };
    const count = (which: keyof typeof counts, cost: number) => {
      counts[which][0]! += 1;
      counts[which][1]! += cost;
    };
    const issueRows: Array<{ k: KeywordRow; cost: number; row: SheetCell[] }> = [];
    for (const k of keywords) {
      const [v, o] = metricOf(k);
      const cost = v[o + COST]!;
      const issues: string[] = [];
      if (k[8] !== null && k[8] <= plan.lowQualityScore) {
        issues.push(`${ISSUE.lowQuality} (${k[8]})`);
        count('lowQuality', cost);
      }
      if (v[o + IMPRESSIONS] === 0) {
        issues.push(ISSUE.noImpressions);
        count('noImpressions', cost);
      }
      if (cost > 0 && cost >= plan.minCostMicros && v[o + CONVERSIONS] === 0) {
        issues.push(ISSUE.costWithoutConversions);
        count('costWithoutConversions', cost);
      }
      const dup = duplicateOf.get(k[0]);
      if (dup !== undefined) {
        issues.push(`${ISSUE.duplicate} (${dup} ad groups)`);
        count('duplicate', cost);
      }
      if (issues.length === 0) continue;
      count('any', cost);
      issueRows.push({
        k,
        cost,
        row: [
          k[2],
          k[4],
          k[5],
          k[6],
          k[7],
          k[8],
          v[o + IMPRESSIONS]!,
          v[o + CLICKS]!,
          units(cost),
          units(v[o + CONVERSIONS]!),
          issues.join('; '),
        ],
      });
    }
    issueRows.sort((a, b) => b.cost - a.cost || compareKeywordRows(a.k, b.k));

    let totalCost = 0;
    for (const k of keywords) {
      const [v, o] = metricOf(k);
      totalCost += v[o + COST]!;
    }
    const summaryRow = (label: string, [n, cost]: number[]): SheetCell[] => [label, n!, units(cost!)];
    const sheets: Sheet[] = [
      {
        ...summarySpec!,
        rows: [
          summaryRow('Keywords checked', [keywords.length, totalCost]),
          summaryRow(`${ISSUE.lowQuality} (≤ ${plan.lowQualityScore})`, counts.lowQuality),
          summaryRow(ISSUE.noImpressions, counts.noImpressions),
          summaryRow(ISSUE.costWithoutConversions, counts.costWithoutConversions),
          summaryRow(ISSUE.duplicate, counts.duplicate),
          summaryRow('Any issue', counts.any),
        ],
      },
      { ...issuesSpec!, rows: issueRows.slice(0, plan.limit).map((x) => x.row) },
      { ...duplicatesSpec!, rows: duplicateRows.map((x) => x.row) },
    ];
    return sheets;
  },
};
