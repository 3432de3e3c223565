import { validateReportParams } from '@ppc/proto';
import { describe, expect, it } from 'vitest';
import { type FieldRow, runLocally, table } from './fixtures.ts';
import { keywordHealth } from './keyword-health.ts';

const TODAY = '2025-06-15';

function keyword(
  campaign: [string, string],
  adGroup: [string, string],
  id: string,
  text: string,
  matchType: string,
  qualityScore: number | null,
): FieldRow {
  return {
    'campaign.id': campaign[0],
    'campaign.name': campaign[1],
    'ad_group.id': adGroup[0],
    'ad_group.name': adGroup[1],
    'ad_group_criterion.criterion_id': id,
    'ad_group_criterion.keyword.text': text,
    'ad_group_criterion.keyword.match_type': matchType,
    'ad_group_criterion.status': 'ENABLED',
    'ad_group_criterion.quality_info.quality_score': qualityScore,
  };
}

function metrics(adGroupId: string, id: string, [impressions, clicks, cost, conversions, value]: number[]): FieldRow {
  return {
    'ad_group.id': adGroupId,
    'ad_group_criterion.criterion_id': id,
    'metrics.impressions': impressions!,
    'metrics.clicks': clicks!,
    'metrics.cost_micros': cost!,
    'metrics.conversions': conversions!,
    'metrics.conversions_value': value!,
  };
}

const shoes: [string, string] = ['1', 'Shoes'];
const brand: [string, string] = ['2', 'Brand'];
const runningGroup: [string, string] = ['11', 'Running'];
const saleGroup: [string, string] = ['12', 'Sale'];
const brandGroup: [string, string] = ['21', 'Brand'];

const KEYWORDS = [
  keyword(shoes, runningGroup, '101', 'running shoes', 'EXACT', 3),
  keyword(shoes, runningGroup, '102', 'trail shoes', 'PHRASE', 8),
  keyword(shoes, saleGroup, '201', 'Running  Shoes', 'EXACT', null),
  keyword(brand, brandGroup, '301', 'running shoes', 'BROAD', 7),
  keyword(brand, brandGroup, '302', 'brand shoes', 'EXACT', 9),
  keyword(brand, brandGroup, '303', 'cheap shoes', 'EXACT', 6),
];
// 102 had no impressions, so the platform sent no metrics row for it; 999 was removed since.
const METRICS = [
  metrics('11', '101', [1000, 50, 40, 2, 100]),
  metrics('12', '201', [300, 10, 8, 1, 50]),
  metrics('21', '301', [200, 5, 3, 0, 0]),
  metrics('21', '302', [500, 30, 25, 0, 0]),
  metrics('21', '303', [100, 4, 5, 0, 0]),
  metrics('99', '999', [9, 9, 9, 9, 9]),
];

const run = (params: object = {}, batchRows?: number) =>
  runLocally('keyword-health', params, TODAY, { keywords: KEYWORDS, metrics: METRICS }, batchRows ? { batchRows } : {});

describe('keyword health report', () => {
  it('flags low quality, no impressions, cost without conversions and duplicates, most expensive first', () => {
    const issues = table(run(), 'Keyword issues');
    expect(issues.map((k) => [k.adGroup, k.keyword, k.matchType, k.cost, k.issues])).toEqual([
      ['Running', 'running shoes', 'EXACT', 40, 'Low quality score (3); Duplicate (2 ad groups)'],
      ['Brand', 'brand shoes', 'EXACT', 25, 'Cost without conversions'],
      ['Sale', 'Running  Shoes', 'EXACT', 8, 'Duplicate (2 ad groups)'],
      ['Running', 'trail shoes', 'PHRASE', 0, 'No impressions'],
    ]);
    expect(issues[0]).toMatchObject({
      campaign: 'Shoes',
      qualityScore: 3,
      impressions: 1000,
      clicks: 50,
      conversions: 2,
    });
    expect(issues[2]!.qualityScore).toBeNull();
  });

  it('groups duplicates by normalised text and match type, with their summed metrics', () => {
    expect(table(run(), 'Duplicates')).toEqual([
      {
        keyword: 'running shoes',
        matchTypes: 'EXACT',
        adGroups: 2,
        where: 'Shoes › Running; Shoes › Sale',
        impressions: 1300,
        clicks: 60,
        cost: 48,
        conversions: 3,
      },
    ]);
  });

  it('counts duplicates across match types when asked', () => {
    const sheets = run({ duplicates: 'any_match_type' });
    expect(table(sheets, 'Duplicates')).toEqual([
      {
        keyword: 'running shoes',
        matchTypes: 'BROAD, EXACT',
        adGroups: 3,
        where: 'Shoes › Running (EXACT); Shoes › Sale (EXACT); Brand › Brand (BROAD)',
        impressions: 1500,
        clicks: 65,
        cost: 51,
        conversions: 3,
      },
    ]);
    expect(table(sheets, 'Keyword issues').find((k) => k.matchType === 'BROAD')!.issues).toBe(
      'Duplicate (3 ad groups)',
    );
  });

  it('summarises each check with the keywords and the cost it concerns', () => {
    expect(table(run(), 'Summary')).toEqual([
      { check: 'Keywords checked', keywords: 6, cost: 81 },
      { check: 'Low quality score (≤ 4)', keywords: 1, cost: 40 },
      { check: 'No impressions', keywords: 1, cost: 0 },
      { check: 'Cost without conversions', keywords: 1, cost: 25 },
      { check: 'Duplicate', keywords: 2, cost: 48 },
      { check: 'Any issue', keywords: 4, cost: 73 },
    ]);
  });

  it('takes its thresholds from the parameters', () => {
    const issues = table(run({ lowQualityScore: 8, minCostWithoutConversions: 3 }), 'Keyword issues');
    expect(issues.map((k) => [k.keyword, k.issues])).toEqual([
      ['running shoes', 'Low quality score (3); Duplicate (2 ad groups)'],
      ['brand shoes', 'Cost without conversions'],
      ['Running  Shoes', 'Duplicate (2 ad groups)'],
      ['cheap shoes', 'Low quality score (6); Cost without conversions'],
      ['running shoes', 'Low quality score (7); Cost without conversions'],
      ['trail shoes', 'Low quality score (8); No impressions'],
    ]);
  });

  it('reads enabled keywords only, unless paused ones are asked for', () => {
    const where = (params: object) => {
      const plan = keywordHealth.plan(validateReportParams('keyword-health', params), { today: TODAY });
      return keywordHealth.queries(plan)[0]!.query.where;
    };
    expect(where({})).toContain("ad_group_criterion.status = 'ENABLED'");
    expect(where({})).toContain("campaign.status = 'ENABLED'");
    expect(where({ includePaused: true })).toContain("ad_group_criterion.status != 'REMOVED'");
  });

  it('gives the same report however the rows are batched', () => {
    expect(run({}, 1)).toEqual(run());
    expect(run({}, 4)).toEqual(run());
  });
});
