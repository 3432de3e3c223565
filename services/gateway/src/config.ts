import { type ConfigOf, envVar } from '@ppc/lib/config';
import { type Keyring, keyringFromEnv } from '@ppc/lib/db';
import { ConfigError } from '@ppc/lib/errors';
import { baseEnv, databaseEnv, regionEnv } from '@ppc/lib/service';
import { Type } from '@sinclair/typebox';

const url = (env: string, def: string, doc: string) =>
  envVar({ env, schema: Type.String({ pattern: '^https?://' }), default: def, doc });
const int = (env: string, def: number, min: number, max: number, doc: string) =>
  envVar({ env, schema: Type.Integer({ minimum: min, maximum: max }), default: def, doc });

/** Everything the gateway reads from its environment, validated once at start. */
export const gatewayEnv = {
  ...baseEnv({ port: 8080 }),
  ...databaseEnv,
  /** Where `runJob`/`retryRun` tasks go: the region of this gateway's system replicas. */
  ...regionEnv,
  secretKey: envVar({
    env: 'PPC_SECRET_KEY',
    schema: Type.String({ minLength: 1 }),
    doc: 'the sealing keyring `keyId:base64key[,oldKeyId:base64key]` (seals refresh tokens of new connections)',
    secret: true,
  }),
  publicUrl: url(
    'PPC_PUBLIC_URL',
    'http://localhost:8080',
    'the URL users reach the gateway at (links, OAuth redirect, Secure cookies when https)',
  ),
  sessionTtlHours: int('PPC_SESSION_TTL_HOURS', 168, 1, 8760, 'lifetime of a login session in hours (1-8760)'),
  uiDist: envVar({
    env: 'PPC_UI_DIST',
    schema: Type.String(),
    default: '',
    doc: "the SPA's built assets; default ui/dist in the repository (served when it exists)",
  }),
  demoLogin: envVar({
    env: 'PPC_DEMO_LOGIN',
    schema: Type.String({ pattern: '^$|^[^:\\s]+@[^:\\s]+:.{8,}$' }),
    default: '',
    doc: '`email:password` of a demo user (with an organization and a demo connection) created at start if missing; empty: none',
    secret: true,
  }),
  demoPlatformUrl: url(
    'PPC_DEMO_PLATFORM_URL',
    'http://127.0.0.1:9200',
    'the demo ad platform (accounts listed when a demo connection is made)',
  ),
  googleClientId: envVar({
    env: 'PPC_GOOGLE_CLIENT_ID',
    schema: Type.String(),
    default: '',
    doc: 'Google OAuth client id; unset: no Google Ads connections',
  }),
  googleClientSecret: envVar({
    env: 'PPC_GOOGLE_CLIENT_SECRET',
    schema: Type.String(),
    default: '',
    doc: 'Google OAuth client secret',
    secret: true,
  }),
  googleAuthUrl: url(
    'PPC_GOOGLE_AUTH_URL',
    'https://accounts.google.com/o/oauth2/v2/auth',
    'Google OAuth consent page',
  ),
  googleTokenUrl: url('PPC_GOOGLE_TOKEN_URL', 'https://oauth2.googleapis.com/token', 'Google OAuth2 token endpoint'),
  trustProxy: envVar({
    env: 'PPC_TRUST_PROXY',
    schema: Type.String({ pattern: '^$|^(true|false|\\d+|[0-9a-fA-F.:/]+(\\s*,\\s*[0-9a-fA-F.:/]+)*)$' }),
    default: '',
    doc: 'behind a load balancer: which X-Forwarded-For hops to trust (true, a hop count, or proxy addresses/CIDRs); empty: none, so rate limits key on the peer address',
  }),
  bodyLimitBytes: int('PPC_GATEWAY_BODY_LIMIT', 1_048_576, 1024, 67_108_864, 'largest request body in bytes'),
  loginPerMinute: int('PPC_LOGIN_RATE_LIMIT', 10, 1, 10_000, 'login attempts per minute per client address'),
  requestsPerMinute: int('PPC_RATE_LIMIT', 1200, 1, 1_000_000, 'API requests per minute per session, token or address'),
  maxQueryDepth: int('PPC_GRAPHQL_MAX_DEPTH', 10, 2, 50, 'deepest GraphQL selection, fragments included'),
  maxQueryCost: int('PPC_GRAPHQL_MAX_COST', 5000, 10, 1_000_000, 'highest estimated GraphQL query cost'),
  maxAliases: int('PPC_GRAPHQL_MAX_ALIASES', 30, 1, 1000, 'most aliases in one GraphQL document'),
};

export type GatewayEnv = ConfigOf<typeof gatewayEnv>;

export interface GatewayConfig extends GatewayEnv {
  keyring: Keyring;
  /** Secure cookies (the public URL is https). */
  secureCookies: boolean;
}

/** The typed config; throws ConfigError naming the variable when the keyring cannot be read. */
export function gatewayConfig(env: GatewayEnv): GatewayConfig {
  const keyring = keyringFromEnv(env.secretKey);
  if ((env.googleClientId === '') !== (env.googleClientSecret === '')) {
    const missing = env.googleClientId === '' ? 'PPC_GOOGLE_CLIENT_ID' : 'PPC_GOOGLE_CLIENT_SECRET';
    throw new ConfigError(missing, undefined, 'set together with the other half of the Google OAuth client (required)');
  }
  return { ...env, keyring, secureCookies: env.publicUrl.startsWith('https://') };
}
