/**
 * The credential broker (`svc.credentials.token`, core NATS request-reply): short-lived ad-platform access tokens
 * for active runs, from refresh tokens sealed in Postgres that never leave this service. The worker side is
 * `@ppc/lib/credentials`.
 */
export {
  type AccessGrant,
  AccessTokens,
  type AccessTokensOptions,
  type AccessTokensStats,
  type ConnectionSnapshot,
} from './access-tokens.ts';
export { type AuthorizedRun, authorizeRun } from './authorize.ts';
export {
  CREDENTIALS_QUEUE,
  type CredentialBroker,
  type CredentialBrokerDeps,
  type CredentialBrokerOptions,
  type CredentialBrokerStats,
  startCredentialBroker,
} from './broker.ts';
export {
  type CredentialsConfig,
  type CredentialsEnv,
  credentialsConfig,
  credentialsEnv,
  type Platform,
  secretKeyEnv,
  type TokenEndpoint,
} from './config.ts';
export { connectorForConnection } from './connector.ts';
export { GrantRevokedError, OAuthClientRejectedError, refreshAccessToken, type RefreshedToken } from './oauth.ts';
export { type ConnectionRevokedEvent, markConnectionRevoked, type OnConnectionRevoked } from './revocation.ts';
