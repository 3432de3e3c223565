import { PermanentError } from '@ppc/lib/errors';
import type { UrlCheckTask } from '@ppc/proto';

/** How tracking placeholders (`{keyword}`, `{campaignid}`, `{lpurl}`, ...) in an account's URLs are treated. */
export type ValueTrackMode = 'strip' | 'resolve';

/**
 * Everything the engine needs to know, with defaults filled in. Task options (`UrlCheckTask.options`) override the
 * first group; the second group is the service's configuration (the same for every task it runs).
 */
export interface CheckOptions {
  /** Unique URLs checked at most; URLs first seen after the limit are counted, not checked. */
  maxUrls: number;
  /** Requests in flight to one host name at once. */
  perHostConcurrency: number;
  /** One HTTP request's deadline (connect, headers and the sniffed part of the body). */
  timeoutMs: number;
  /** Redirects followed; one more is reported as a redirect loop (as browsers do: ERR_TOO_MANY_REDIRECTS). */
  maxRedirects: number;
  /** Phrases that make a 2xx page a soft error; matched case-insensitively in the first `bodySniffBytes` of text. */
  softErrorPhrases: readonly string[];
  valueTrack: ValueTrackMode;

  /** URLs being checked at once, over all hosts. */
  globalConcurrency: number;
  /** Least time between the starts of two requests to one host (politeness). */
  perHostDelayMs: number;
  /** Body bytes read from a 2xx text page for soft-error phrases. */
  bodySniffBytes: number;
  /** Pause before the one retry after a connection error. */
  retryDelayMs: number;
  /** A 2xx page that took at least this long is noted as slow (its class stays ok). */
  slowMs: number;
  userAgent: string;
}

/** Service-level settings: not part of a task, set once from the service's config. */
export type EngineSettings = Pick<
  CheckOptions,
  'globalConcurrency' | 'perHostDelayMs' | 'bodySniffBytes' | 'retryDelayMs' | 'slowMs' | 'userAgent'
>;

/** English, German, French, Spanish, Italian, Czech and Slovak phrasing of "gone" and "not found" pages. */
export const DEFAULT_SOFT_ERROR_PHRASES: readonly string[] = [
  'out of stock',
  'sold out',
  'page not found',
  'no longer available',
  'currently unavailable',
  'ausverkauft',
  'nicht mehr verfügbar',
  'seite nicht gefunden',
  'rupture de stock',
  'page introuvable',
  'agotado',
  'esaurito',
  'vyprodáno',
  'stránka nenalezena',
  'nedostupné',
  'vypredané',
];

export const DEFAULT_OPTIONS: Readonly<CheckOptions> = Object.freeze({
  maxUrls: 100_000,
  perHostConcurrency: 4,
  timeoutMs: 10_000,
  maxRedirects: 10,
  softErrorPhrases: DEFAULT_SOFT_ERROR_PHRASES,
  valueTrack: 'strip',
  globalConcurrency: 256,
  perHostDelayMs: 10,
  bodySniffBytes: 64 * 1024,
  retryDelayMs: 200,
  slowMs: 3_000,
  userAgent: 'ppc-robot-url-checker/0.1 (landing page check)',
});

type Bounds = { min: number; max: number };
const BOUNDS: Record<keyof CheckOptions & string, Bounds | undefined> = {
  maxUrls: { min: 1, max: 1_000_000 },
  perHostConcurrency: { min: 1, max: 64 },
  timeoutMs: { min: 100, max: 120_000 },
  maxRedirects: { min: 0, max: 20 },
  globalConcurrency: { min: 1, max: 4096 },
  perHostDelayMs: { min: 0, max: 60_000 },
  bodySniffBytes: { min: 0, max: 1024 * 1024 },
  retryDelayMs: { min: 0, max: 60_000 },
  slowMs: { min: 1, max: 600_000 },
  softErrorPhrases: undefined,
  valueTrack: undefined,
  userAgent: undefined,
};

/**
 * Fills defaults under the task's options and the service's settings, and checks every value: a bad value is a
 * PermanentError naming the option and the reason (a task that carries it would fail the same way on every retry).
 */
export function resolveOptions(
  task: UrlCheckTask['options'] | Partial<CheckOptions> = {},
  settings: Partial<EngineSettings> = {},
): CheckOptions {
  const merged: CheckOptions = { ...DEFAULT_OPTIONS, ...settings };
  for (const [key, value] of Object.entries(task) as [keyof CheckOptions, unknown][]) {
    if (value !== undefined) (merged as unknown as Record<string, unknown>)[key] = value;
  }
  for (const [key, bounds] of Object.entries(BOUNDS)) {
    if (!bounds) continue;
    const v = merged[key as keyof CheckOptions];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < bounds.min || v > bounds.max) {
      throw new PermanentError(
        `url check option ${key}=${JSON.stringify(v)}: expected an integer ${bounds.min}–${bounds.max}`,
        {
          code: 'URLCHECK_BAD_OPTION',
        },
      );
    }
  }
  if (merged.valueTrack !== 'strip' && merged.valueTrack !== 'resolve') {
    throw new PermanentError(
      `url check option valueTrack=${JSON.stringify(merged.valueTrack)}: expected strip or resolve`,
      {
        code: 'URLCHECK_BAD_OPTION',
      },
    );
  }
  if (
    !Array.isArray(merged.softErrorPhrases) ||
    merged.softErrorPhrases.some((p) => typeof p !== 'string' || !p.trim())
  ) {
    throw new PermanentError('url check option softErrorPhrases: expected a list of non-empty phrases', {
      code: 'URLCHECK_BAD_OPTION',
    });
  }
  if (typeof merged.userAgent !== 'string' || !merged.userAgent) {
    throw new PermanentError('url check setting userAgent: expected a non-empty string', {
      code: 'URLCHECK_BAD_OPTION',
    });
  }
  return Object.freeze({ ...merged, softErrorPhrases: Object.freeze([...merged.softErrorPhrases]) });
}
