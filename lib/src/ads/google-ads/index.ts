export {
  createGoogleAdsConnector,
  GoogleAdsConnector,
  type GoogleAdsConfig,
  normalizeCustomerId,
} from './connector.ts';
export { JsonStreamError, SearchStreamParser } from './stream-parser.ts';
export { durationMs, errorFromBody, GoogleAdsFailure, mapGoogleAdsError } from './errors.ts';
