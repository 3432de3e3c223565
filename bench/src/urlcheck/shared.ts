// What the three processes of `npm run bench -- urlcheck` agree on: the pages, the input and the limits.
import type { UrlUsage } from '@ppc/lib/ads';

export const HOSTS = 50;
/** Hosts are 127.0.0.2 .. 127.0.0.51. */
export const FIRST_HOST = 2;
export const UNIQUE_URLS = 10_000;
export const USES = 50_000;
export const CAMPAIGNS = 20;

export interface Limits {
  perHostConcurrency: number;
  globalConcurrency: number;
  perHostDelayMs: number;
  timeoutMs: number;
  maxRedirects: number;
}

/** Per host 8 at once is the binding limit: the global one allows every host its 8. */
export const LIMITS: Limits = {
  perHostConcurrency: 8,
  globalConcurrency: HOSTS * 8,
  perHostDelayMs: 10,
  timeoutMs: 10_000,
  maxRedirects: 10,
};

/** A small integer hash, so every process derives the same page behaviour from the page number. */
export function mix(n: number): number {
  let x = (n + 0x9e3779b9) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

export type PageKind = 'ok' | 'redirect' | 'not-found' | 'out-of-stock';

/** 90% ok, 5% one redirect (then ok), 3% not found, 2% out of stock. */
export function pageKind(n: number): PageKind {
  const r = mix(n) % 100;
  return r < 90 ? 'ok' : r < 95 ? 'redirect' : r < 98 ? 'not-found' : 'out-of-stock';
}

/** 20–200 ms, spread evenly. */
export function pageDelayMs(n: number): number {
  return 20 + (mix(n ^ 0x5bd1e995) % 181);
}

/** Unique page `n`: on host `n mod 50`, so each host has 200 pages. */
export function pageUrl(origins: readonly string[], n: number): string {
  return `${origins[n % origins.length]}/product/${n}/item-${n % 97}?ref=ppc`;
}

/**
 * The account's 50,000 uses of its 10,000 pages, in the order a connector yields them: one ad per page, then
 * four keywords per page (the same final URL, as keywords overriding their ad group's URL do), in batches.
 */
export function* accountUses(origins: readonly string[], batchSize = 1000): Generator<UrlUsage[]> {
  let batch: UrlUsage[] = [];
  for (let i = 0; i < USES; i++) {
    const n = i % UNIQUE_URLS;
    const keyword = i >= UNIQUE_URLS;
    const campaign = n % CAMPAIGNS;
    batch.push({
      url: pageUrl(origins, n),
      source: keyword ? 'keyword' : 'ad',
      campaignId: String(10_000_000 + campaign),
      campaignName: `Search — Products #${campaign + 1}`,
      adGroupId: String(100_000_000_000 + (n >> 2)),
      adGroupName: `Product group ${n >> 2}`,
      entityId: String((keyword ? 200_000_000_000 : 300_000_000_000) + i),
      label: keyword ? `buy item ${n % 97} ${i % 7}` : 'RESPONSIVE_SEARCH_AD',
    });
    if (batch.length === batchSize) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length) yield batch;
}
