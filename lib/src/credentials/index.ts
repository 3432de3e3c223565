/**
 * The worker side of the credential broker: short-lived ad-platform access tokens by core NATS request-reply on
 * `svc.credentials.token` (the broker itself is in services/system/src/credentials). `requestAccessToken` asks once;
 * `connectorForRun` gives a run its connector with tokens from the broker.
 */
export { CredentialErrorCode } from './codes.ts';
export {
  type ConnectorForRunOptions,
  connectorForRun,
  openRunConnection,
  type RunConnection,
  type RunConnectorTuning,
  type RunCredentials,
} from './connector.ts';
export { type CredentialGrant, type RequestAccessTokenOptions, requestAccessToken } from './request.ts';
export { sheetsAccessFor } from './output-access.ts';
