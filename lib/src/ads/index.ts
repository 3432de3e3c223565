/**
 * Ad-platform connectors. The contract (and what each error means) lives in `types.ts`; callers pick a platform
 * with `createDemoConnector` or `createGoogleAdsConnector` and then only use {@link AdPlatformConnector}.
 */
export * from './types.ts';
export { accessorFor, columnFor, schemaFor, toGaql } from './schema.ts';
export { type BreakerOptions, breakerFor, createResilience, resetBreakers, type RetryOptions } from './resilience.ts';
export {
  createGoogleAdsConnector,
  GoogleAdsConnector,
  type GoogleAdsConfig,
  GoogleAdsFailure,
  JsonStreamError,
  mapGoogleAdsError,
  SearchStreamParser,
} from './google-ads/index.ts';
export {
  createDemoConnector,
  type DemoPlatform,
  type DemoPlatformOptions,
  LANDING_PROPORTIONS,
  type LandingKind,
  landingKind,
  startDemoPlatform,
} from './demo/index.ts';
