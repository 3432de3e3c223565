import { GoogleAdsConnector } from '@ppc/lib/ads';
import type { RunConnectorTuning } from '@ppc/lib/credentials';
import type { AccessTokens, ConnectionSnapshot } from './access-tokens.ts';

/**
 * A connector for one connection inside the system service (sync-accounts), with its tokens from the shared
 * {@link AccessTokens} cache: the same refresh serves the broker's workers and this. Throws PermanentError
 * `PLATFORM_NOT_CONFIGURED` when the deployment has no OAuth client for the platform.
 */
export function connectorForConnection(
  tokens: AccessTokens,
  conn: ConnectionSnapshot,
  tuning: RunConnectorTuning = {},
): GoogleAdsConnector {
  const endpoint = tokens.endpointFor(conn.platform);
  return new GoogleAdsConnector({
    ...tuning,
    platform: conn.platform,
    developerToken: endpoint.developerToken,
    baseUrl: endpoint.apiBaseUrl,
    accessToken: async ({ force }) => (await tokens.get(conn, { force })).accessToken,
  });
}
