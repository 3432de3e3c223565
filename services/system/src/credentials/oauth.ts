import { AdsErrorCode } from '@ppc/lib/ads';
import { PermanentError, type PpcError, RetryableError } from '@ppc/lib/errors';
import { type Credentials, OAuth2Client } from 'google-auth-library';
import type { TokenEndpoint } from './config.ts';

/** The grant was refused with `invalid_grant`: the user revoked access, or the token expired for good. */
export class GrantRevokedError extends PermanentError {
  override name = 'GrantRevokedError';
  constructor(message: string) {
    super(message, { code: AdsErrorCode.Auth });
  }
}

/**
 * The token endpoint refused our OAuth client (`invalid_client`, `unauthorized_client`, ...): a deployment problem
 * (client id or secret), not the user's, so the connection is not marked revoked.
 */
export class OAuthClientRejectedError extends PermanentError {
  override name = 'OAuthClientRejectedError';
  constructor(message: string) {
    super(message, { code: AdsErrorCode.Auth });
  }
}

export interface RefreshedToken {
  accessToken: string;
  /** Epoch ms. */
  expiresAt: number;
  /** Set when the provider rotated the refresh token: the old one is dead, this one must be stored. */
  rotatedRefreshToken?: string;
}

export interface RefreshOptions {
  /** Per HTTP attempt. */
  timeoutMs: number;
  /** Retries of a 5xx, 429 or network failure inside this refresh (gaxios backoff from 100 ms). */
  retries: number;
  /** Assumed lifetime when the endpoint sends no `expires_in` (Google always sends it). */
  defaultLifetimeMs?: number;
  now?: () => number;
}

/** How long a worker should wait when the token endpoint failed and said nothing about it. */
export const TOKEN_ENDPOINT_RETRY_MS = 15_000;

/**
 * One refresh-token grant at the platform's OAuth2 token endpoint, through googleapis' auth client
 * (`google.auth.OAuth2` is google-auth-library's OAuth2Client). A fresh client per refresh: the caller caches and
 * single-flights, so the library's own caches would only hide stale state.
 *
 * Errors never carry the library's error as `cause`: its request config holds the refresh token and client secret.
 */
export async function refreshAccessToken(
  endpoint: TokenEndpoint,
  refreshToken: string,
  opts: RefreshOptions,
): Promise<RefreshedToken> {
  const now = opts.now ?? Date.now;
  const client = new OAuth2Client({
    clientId: endpoint.clientId,
    clientSecret: endpoint.clientSecret,
    endpoints: { oauth2TokenUrl: endpoint.tokenUrl },
    transporterOptions: {
      timeout: opts.timeoutMs,
      retryConfig: { retry: opts.retries, noResponseRetries: opts.retries },
    },
  });
  client.setCredentials({ refresh_token: refreshToken });
  // The library overwrites the refresh token in the credentials it returns with the old one; the raw response it
  // emits first still has a rotated one.
  let rotated: string | undefined;
  client.on('tokens', (tokens) => {
    if (tokens.refresh_token && tokens.refresh_token !== refreshToken) rotated = tokens.refresh_token;
  });
  const started = now();
  let credentials: Credentials;
  try {
    ({ credentials } = await client.refreshAccessToken());
  } catch (err) {
    throw tokenEndpointError(endpoint, err);
  }
  if (!credentials.access_token) {
    throw new RetryableError(`${endpoint.platform}: the OAuth token endpoint answered without an access token`, {
      code: AdsErrorCode.Unavailable,
      retryAfterMs: TOKEN_ENDPOINT_RETRY_MS,
    });
  }
  return {
    accessToken: credentials.access_token,
    expiresAt: credentials.expiry_date ?? started + (opts.defaultLifetimeMs ?? 3_600_000),
    ...(rotated && { rotatedRefreshToken: rotated }),
  };
}

interface GaxiosLike {
  code?: string | number;
  message?: string;
  response?: {
    status?: number;
    data?: { error?: unknown; error_description?: unknown } | string;
    headers?: Headers | Record<string, string>;
  };
}

function retryAfterMs(headers: Headers | Record<string, string> | undefined): number | undefined {
  // Duck-typed: gaxios' Headers may come from another fetch implementation than the global one.
  const raw =
    typeof headers?.get === 'function'
      ? (headers as Headers).get('retry-after')
      : (headers as Record<string, string> | undefined)?.['retry-after'];
  if (!raw) return undefined;
  const seconds = Number(raw);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.round(seconds * 1000);
  const at = Date.parse(raw);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** The endpoint's refusal in its own words (`error: error_description`), or the transport failure. */
function describe(err: GaxiosLike): string {
  const data = err.response?.data;
  if (data && typeof data === 'object' && typeof data.error === 'string') {
    return typeof data.error_description === 'string' ? `${data.error}: ${data.error_description}` : data.error;
  }
  if (err.response?.status) return `HTTP ${err.response.status}`;
  return typeof err.code === 'string' ? err.code : 'no response';
}

export function tokenEndpointError(endpoint: TokenEndpoint, error: unknown): PpcError {
  const err = (error ?? {}) as GaxiosLike;
  const status = err.response?.status;
  const data = err.response?.data;
  const oauthError = data && typeof data === 'object' && typeof data.error === 'string' ? data.error : undefined;
  const what = describe(err);
  if (oauthError === 'invalid_grant') {
    return new GrantRevokedError(
      `${endpoint.platform}: the refresh token was refused (${what}); the connection must be reconnected`,
    );
  }
  if (status === 429) {
    const after = retryAfterMs(err.response?.headers);
    return new RetryableError(`${endpoint.platform}: OAuth token endpoint rate limited (${what})`, {
      code: AdsErrorCode.RateLimited,
      retryAfterMs: after ?? TOKEN_ENDPOINT_RETRY_MS,
    });
  }
  if (status !== undefined && status >= 400 && status < 500) {
    // invalid_client, unauthorized_client, ...: our OAuth client is misconfigured, the user's grant may be fine.
    return new OAuthClientRejectedError(
      `${endpoint.platform}: OAuth token endpoint refused the client (${what}); check the OAuth client id and secret`,
    );
  }
  const timedOut = err.code === 'TimeoutError' || /timeout|timed out/i.test(err.message ?? '');
  return new RetryableError(
    `${endpoint.platform}: OAuth token endpoint ${timedOut ? 'timed out' : `unavailable (${what})`}`,
    {
      code: timedOut ? AdsErrorCode.Timeout : AdsErrorCode.Unavailable,
      retryAfterMs: retryAfterMs(err.response?.headers) ?? TOKEN_ENDPOINT_RETRY_MS,
    },
  );
}
