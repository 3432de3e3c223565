import type { AccountRef, AdPlatformConnector } from '@ppc/lib/ads';
import type { UrlCheckTask } from '@ppc/proto';
import type { Dispatcher } from 'undici';
import { checkUrls, PROBLEM_CLASSES, type ResultStore, type UrlClass } from './check/index.ts';
import { type CheckOptions, type EngineSettings, resolveOptions } from './options.ts';
import { buildSheets, type ReportSheet } from './report/index.ts';
import { collectUrls, type UrlSet } from './urls/index.ts';

export interface UrlCheckProgress {
  /** `collecting`: reading the account's URLs (total unknown yet); `checking`: requests under way. */
  phase: 'collecting' | 'checking';
  /** URLs checked so far (0 while collecting). */
  checked: number;
  /** Unique URLs to check (while collecting: found so far). */
  total: number;
  /** Uses read from the account so far. */
  uses: number;
  /** 0–100 over the checking phase; 0 while collecting. */
  percent: number;
}

export interface UrlCheckDeps {
  connector: AdPlatformConnector;
  account: AccountRef;
  /** Cancels the run: collection stops, requests in flight are cut, and the promise rejects with the reason. */
  signal?: AbortSignal | undefined;
  /** Throttled: at most every 250 ms during checking, after each connector batch during collection. */
  onProgress?: ((p: UrlCheckProgress) => void) | undefined;
  /** The service's settings (concurrency over all hosts, politeness delay...); defaults otherwise. */
  settings?: Partial<EngineSettings> | undefined;
  /** Requests go through this undici dispatcher instead of the run's own Agent (tests, a shared proxy). */
  dispatcher?: Dispatcher | undefined;
}

export interface UrlCheckStats {
  urls: number;
  uses: number;
  /** Uses of URLs first seen after `maxUrls` was reached: counted, not checked. */
  skippedUses: number;
  hosts: number;
  campaigns: number;
  byClass: Record<UrlClass, number>;
  /** URLs whose class needs fixing (everything but ok and working redirects). */
  problems: number;
  requests: number;
  retries: number;
  collectMs: number;
  checkMs: number;
}

export interface UrlCheckResult {
  /** Summary, By campaign, URLs, Where used (see report/sheets.ts); rows are produced as they are read. */
  sheets: ReportSheet[];
  stats: UrlCheckStats;
  options: CheckOptions;
  set: UrlSet;
  results: ResultStore;
}

/**
 * A whole URL check for one account: collect and dedupe the URLs through the connector, check them, and shape the
 * report. Resolves once every URL is checked; the sheets are then read (and written) by the caller. Bad options
 * reject with a PermanentError naming the option; connector failures pass through as the connector typed them.
 */
export async function runUrlCheck(task: Pick<UrlCheckTask, 'options'>, deps: UrlCheckDeps): Promise<UrlCheckResult> {
  const options = resolveOptions(task.options, deps.settings);
  deps.signal?.throwIfAborted();

  const collectStarted = performance.now();
  const set = await collectUrls(deps.connector, deps.account, {
    valueTrack: options.valueTrack,
    maxUrls: options.maxUrls,
    signal: deps.signal,
    onBatch: (uses, urls) => deps.onProgress?.({ phase: 'collecting', checked: 0, total: urls, uses, percent: 0 }),
  });
  const collectMs = performance.now() - collectStarted;

  const checkStarted = performance.now();
  const results = await checkUrls(set, options, {
    dispatcher: deps.dispatcher,
    signal: deps.signal,
    onProgress: ({ checked, total }) =>
      deps.onProgress?.({
        phase: 'checking',
        checked,
        total,
        uses: set.uses,
        percent: total ? Math.round((checked / total) * 1000) / 10 : 100,
      }),
  });
  const checkMs = performance.now() - checkStarted;

  const s = set.stats();
  const stats: UrlCheckStats = {
    urls: s.urls,
    uses: s.uses,
    skippedUses: s.skippedUses,
    hosts: s.hosts,
    campaigns: s.campaigns,
    byClass: { ...results.byClass },
    problems: Object.entries(results.byClass).reduce(
      (n, [cls, k]) => n + (PROBLEM_CLASSES.has(cls as UrlClass) ? k : 0),
      0,
    ),
    requests: results.requests,
    retries: results.retries,
    collectMs: Math.round(collectMs),
    checkMs: Math.round(checkMs),
  };
  return { sheets: buildSheets(set, results, { signal: deps.signal }), stats, options, set, results };
}
