import type { AccountRef, AdPlatformConnector } from '@ppc/lib/ads';
import type { ValueTrackMode } from '../options.ts';
import { normalizeUrl } from './normalize.ts';
import { UrlSet } from './url-set.ts';
import { applyValueTrack, type TrackedUsage } from './valuetrack.ts';

export interface CollectOptions {
  valueTrack: ValueTrackMode;
  maxUrls: number;
  signal?: AbortSignal | undefined;
  /** After each batch from the connector: uses read so far and unique URLs among them. */
  onBatch?: ((uses: number, urls: number) => void) | undefined;
}

/**
 * Streams every use of a URL in the account from the connector (ads, keywords, sitelinks), applies the ValueTrack
 * mode, normalises and dedupes. Only one batch of the connector's objects is alive at a time; what is kept is the
 * compact {@link UrlSet}. Connector errors pass through (they are already typed: RetryableError, PermanentError).
 */
export async function collectUrls(
  connector: AdPlatformConnector,
  account: AccountRef,
  opts: CollectOptions,
): Promise<UrlSet> {
  const set = new UrlSet(opts.maxUrls);
  for await (const batch of connector.listUrls(account, opts.signal ? { signal: opts.signal } : {})) {
    opts.signal?.throwIfAborted();
    for (const use of batch as TrackedUsage[]) {
      const url = applyValueTrack(use, opts.valueTrack);
      if (!set.addKnown(url, use)) set.add(normalizeUrl(url), use);
    }
    opts.onBatch?.(set.uses, set.size);
  }
  set.seal();
  return set;
}
