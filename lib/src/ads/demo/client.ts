import { GoogleAdsConnector, type GoogleAdsConfig } from '../google-ads/connector.ts';

/**
 * The demo platform's connector: the Google Ads connector pointed at the demo server, so demo reports take the
 * same HTTP, OAuth, streaming and error path as real ones. The demo server accepts any client id and secret;
 * the refresh token `revoked` is refused, to show what a disconnected account looks like.
 */
export function createDemoConnector(
  opts: { url: string; refreshToken?: string } & Partial<Omit<GoogleAdsConfig, 'baseUrl' | 'tokenUrl'>>,
): GoogleAdsConnector {
  const url = opts.url.replace(/\/$/, '');
  return new GoogleAdsConnector({
    developerToken: 'demo',
    clientId: 'demo',
    clientSecret: 'demo',
    refreshToken: 'demo',
    platform: 'demo',
    ...opts,
    baseUrl: url,
    tokenUrl: `${url}/token`,
  });
}
