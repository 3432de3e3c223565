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
// The demo's parts one by one, not './demo/index.ts': a process that only reads from the demo platform then loads
// neither the server nor the synthetic world.
export { createDemoConnector } from './demo/client.ts';
export { LANDING_PROPORTIONS, type LandingKind, landingKind } from './demo/landing.ts';
export { type DemoPlatform, type DemoPlatformOptions, startDemoPlatform } from './demo/start.ts';
