export { type CollectOptions, collectUrls } from './collect.ts';
export { hostOf, type NormalizedUrl, normalizeUrl } from './normalize.ts';
export { UrlSet, type UrlSetStats, type UseRecord } from './url-set.ts';
export { applyValueTrack, type TrackedUsage } from './valuetrack.ts';
