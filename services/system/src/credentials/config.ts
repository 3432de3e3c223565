import { type ConfigOf, envVar } from '@ppc/lib/config';
import { type Keyring, keyringFromEnv } from '@ppc/lib/db';
import { ConfigError } from '@ppc/lib/errors';
import type { CredentialRequest } from '@ppc/proto';
import { Type } from '@sinclair/typebox';

export type Platform = CredentialRequest['platform'];

/** Everything needed to refresh a platform's tokens and to tell a worker where its API is. */
export interface TokenEndpoint {
  platform: Platform;
  /** OAuth2 token endpoint (refresh-token grant). */
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  /** Sent to workers with each token: the API refuses calls without it. */
  developerToken: string;
  /** The API's base URL (without the version segment), sent to workers. */
  apiBaseUrl: string;
}

export interface CredentialsConfig {
  /** Opens sealed refresh tokens and seals rotated ones. */
  keyring: Keyring;
  /** A platform missing here is not configured: its requests are refused with PLATFORM_NOT_CONFIGURED. */
  platforms: Partial<Record<Platform, TokenEndpoint>>;
}

const url = (doc: string, env: string, def: string) =>
  envVar({ env, schema: Type.String({ pattern: '^https?://' }), default: def, doc });

/** `PPC_SECRET_KEY`: the sealing keyring (also needed by whatever seals tokens when an account is connected). */
export const secretKeyEnv = {
  secretKey: envVar({
    env: 'PPC_SECRET_KEY',
    schema: Type.String({ minLength: 1 }),
    doc: 'the sealing keyring `keyId:base64key[,oldKeyId:base64key]`, 32-byte keys, the first seals',
    secret: true,
  }),
};

/** Variables of the credential broker (and of sync-accounts, which uses the same tokens). */
export const credentialsEnv = {
  ...secretKeyEnv,
  googleClientId: envVar({
    env: 'PPC_GOOGLE_CLIENT_ID',
    schema: Type.String(),
    default: '',
    doc: 'Google OAuth client id; unset: Google Ads connections cannot be used',
  }),
  googleClientSecret: envVar({
    env: 'PPC_GOOGLE_CLIENT_SECRET',
    schema: Type.String(),
    default: '',
    doc: 'Google OAuth client secret',
    secret: true,
  }),
  googleDeveloperToken: envVar({
    env: 'PPC_GOOGLE_DEVELOPER_TOKEN',
    schema: Type.String(),
    default: '',
    doc: 'Google Ads API developer token',
    secret: true,
  }),
  googleTokenUrl: url('Google OAuth2 token endpoint', 'PPC_GOOGLE_TOKEN_URL', 'https://oauth2.googleapis.com/token'),
  googleAdsApiUrl: url('Google Ads API base URL', 'PPC_GOOGLE_ADS_API_URL', 'https://googleads.googleapis.com'),
  demoPlatformUrl: url('the demo ad platform (its /token and API)', 'PPC_DEMO_PLATFORM_URL', 'http://127.0.0.1:9200'),
};

export type CredentialsEnv = ConfigOf<typeof credentialsEnv>;

/**
 * The broker's typed config from the service's validated environment. Throws ConfigError naming the variable: an
 * unreadable keyring, or a Google OAuth client given in part.
 */
export function credentialsConfig(env: CredentialsEnv): CredentialsConfig {
  const keyring = keyringFromEnv(env.secretKey);
  const demoUrl = env.demoPlatformUrl.replace(/\/$/, '');
  const platforms: CredentialsConfig['platforms'] = {
    // The demo platform accepts any client and developer token (lib/src/ads/demo).
    demo: {
      platform: 'demo',
      tokenUrl: `${demoUrl}/token`,
      clientId: 'demo',
      clientSecret: 'demo',
      developerToken: 'demo',
      apiBaseUrl: demoUrl,
    },
  };
  const google = {
    PPC_GOOGLE_CLIENT_ID: env.googleClientId,
    PPC_GOOGLE_CLIENT_SECRET: env.googleClientSecret,
    PPC_GOOGLE_DEVELOPER_TOKEN: env.googleDeveloperToken,
  };
  const given = Object.entries(google).filter(([, v]) => v !== '');
  if (given.length > 0 && given.length < 3) {
    const missing = Object.keys(google).find((k) => google[k as keyof typeof google] === '')!;
    throw new ConfigError(missing, undefined, `set together with ${given.map(([k]) => k).join(', ')} (required)`);
  }
  if (given.length === 3) {
    platforms['google-ads'] = {
      platform: 'google-ads',
      tokenUrl: env.googleTokenUrl,
      clientId: env.googleClientId,
      clientSecret: env.googleClientSecret,
      developerToken: env.googleDeveloperToken,
      apiBaseUrl: env.googleAdsApiUrl.replace(/\/$/, ''),
    };
  }
  return { keyring, platforms };
}
