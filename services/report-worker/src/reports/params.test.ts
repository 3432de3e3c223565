// The report parameter contract (`@ppc/proto` reports.ts): what the gateway checks when a job is saved and the
// worker again when the task arrives.
import { ReportParamsError, reportTypeIds, reportTypes, resolvePeriod, validateReportParams } from '@ppc/proto';
import { describe, expect, it } from 'vitest';
import { reportDefinitions } from './index.ts';

function refusal(type: string, params: unknown): ReportParamsError {
  try {
    validateReportParams(type, params);
  } catch (err) {
    if (err instanceof ReportParamsError) return err;
    throw err;
  }
  throw new Error(`${JSON.stringify(params)} was accepted`);
}

describe('report parameters', () => {
  it('has an implementation for every report type, and ids that are subject tokens', () => {
    expect(Object.keys(reportDefinitions).sort()).toEqual([...reportTypeIds].sort());
    for (const id of reportTypeIds) {
      expect(reportDefinitions[id].id).toBe(id);
      expect(id).toMatch(/^[a-z-]+$/);
      expect(reportTypes[id].outputs).toEqual(['sheets', 'xlsx', 'csv']);
      expect(reportTypes[id].timeLimitMs).toBeGreaterThan(0);
    }
  });

  it('fills in every default, and keeps what was given', () => {
    expect(validateReportParams('search-terms', {})).toEqual({
      period: 'last_30_days',
      minCost: 10,
      minClicks: 5,
      maxConversions: 0,
      includeExcluded: false,
      candidatesLimit: 1000,
      ngramSizes: [1, 2, 3],
      ngramLimit: 1000,
    });
    expect(validateReportParams('anomalies', { minBaseline: { clicks: 3 } }).minBaseline).toEqual({
      impressions: 100,
      clicks: 3,
      cost: 10,
      conversions: 2,
    });
    const given = { period: { start: '2025-01-01', end: '2025-01-31' }, compareTo: 'none' };
    expect(validateReportParams('account-performance', given)).toEqual({ ...given, byDevice: false });
    // The caller's object is not touched.
    expect(given).toEqual({ period: { start: '2025-01-01', end: '2025-01-31' }, compareTo: 'none' });
    for (const id of reportTypeIds) expect(() => validateReportParams(id, undefined)).not.toThrow();
  });

  it('names the field and the reason when it refuses', () => {
    expect(refusal('search-terms', { minCost: -1 })).toMatchObject({
      field: '/minCost',
      reportType: 'search-terms',
      code: 'REPORT_PARAMS_INVALID',
    });
    expect(refusal('search-terms', { minCost: -1 }).message).toMatch(/minCost.*greater or equal to 0.*-1/);
    expect(refusal('search-terms', { mincost: 1 })).toMatchObject({ field: '/mincost', reason: 'unknown parameter' });
    expect(refusal('search-terms', { ngramSizes: [1, 4] }).field).toBe('/ngramSizes/1');
    expect(refusal('search-terms', { ngramSizes: [2, 2] }).field).toBe('/ngramSizes');
    expect(refusal('search-terms', { candidatesLimit: 1.5 }).field).toBe('/candidatesLimit');
    expect(refusal('anomalies', { metrics: ['clicks', 'ctr'] }).field).toBe('/metrics/1');
    expect(refusal('budget-pacing', { month: '2025-13' }).field).toBe('/month');
    expect(refusal('budget-pacing', { campaignMonthlyBudgets: { abc: 10 } })).toMatchObject({
      field: '/campaignMonthlyBudgets/abc',
      reason: 'unexpected key',
    });
    expect(refusal('budget-pacing', { limitedMinDays: 9, trendDays: 7 }).field).toBe('/limitedMinDays');
    expect(refusal('search-terms', [])).toMatchObject({ field: '', reason: 'parameters must be an object' });
    expect(refusal('no-such-report', {}).reason).toMatch(/unknown report type.*search-terms/);
  });

  it('accepts a period as a preset or an inclusive range of real days, three years at most', () => {
    expect(refusal('search-terms', { period: 'last_2_days' }).reason).toMatch(
      /expected one of "yesterday".*\{start, end\}/,
    );
    expect(refusal('search-terms', { period: { start: '2025-01-01', end: 'soon' } }).field).toBe('/period/end');
    expect(refusal('search-terms', { period: { start: '2025-02-29', end: '2025-03-01' } })).toMatchObject({
      field: '/period/start',
      reason: '"2025-02-29" is not a calendar day',
    });
    expect(refusal('search-terms', { period: { start: '2025-03-02', end: '2025-03-01' } }).field).toBe('/period/end');
    expect(refusal('search-terms', { period: { start: '2020-01-01', end: '2025-01-01' } }).field).toBe('/period');
    expect(refusal('search-terms', { period: { start: '2025-01-01' } }).field).toBe('/period/end');
  });

  it('resolves presets against the account’s today as Google Ads does', () => {
    expect(resolvePeriod('yesterday', '2025-03-01')).toEqual({ start: '2025-02-28', end: '2025-02-28' });
    expect(resolvePeriod('last_7_days', '2025-03-01')).toEqual({ start: '2025-02-22', end: '2025-02-28' });
    expect(resolvePeriod('last_30_days', '2025-06-15')).toEqual({ start: '2025-05-16', end: '2025-06-14' });
    expect(resolvePeriod('this_month', '2025-03-15')).toEqual({ start: '2025-03-01', end: '2025-03-15' });
    expect(resolvePeriod('last_month', '2025-01-10')).toEqual({ start: '2024-12-01', end: '2024-12-31' });
    expect(resolvePeriod('last_month', '2024-03-31')).toEqual({ start: '2024-02-01', end: '2024-02-29' });
    expect(() => resolvePeriod('yesterday', '15/06/2025')).toThrow(RangeError);
  });
});
