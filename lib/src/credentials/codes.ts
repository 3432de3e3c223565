/**
 * Codes of the credential broker's refusals (`credentials.reply.v1` with `ok: false`), besides the connector codes
 * (`AdsErrorCode`: `ADS_AUTH` for a revoked grant, `ADS_UNAVAILABLE`/`ADS_RATE_LIMITED` for a token endpoint that
 * failed) that a refresh can end in. Stable: the broker sets them, workers and tests match on them.
 */
export const CredentialErrorCode = {
  /** The request body does not match `credentials.request.v1`; the message names the field. Permanent. */
  InvalidRequest: 'CREDENTIALS_INVALID_REQUEST',
  /** No run with this id. Permanent. */
  RunNotFound: 'RUN_NOT_FOUND',
  /** The run has finished (succeeded, failed, cancelled): its worker has no business with the account any more. Permanent. */
  RunNotActive: 'RUN_NOT_ACTIVE',
  /** The run's job is not on this ad account (or the account is in another organization). Permanent. */
  AccountMismatch: 'ACCOUNT_MISMATCH',
  /** The account is not reached through this connection, or the platform differs. Permanent. */
  ConnectionMismatch: 'CONNECTION_MISMATCH',
  /** This deployment has no OAuth client for the platform (e.g. no Google client id). Permanent. */
  PlatformNotConfigured: 'PLATFORM_NOT_CONFIGURED',
  /** The stored refresh token cannot be opened (tampered, malformed); reconnecting the account fixes it. Permanent. */
  SecretUnreadable: 'CREDENTIALS_UNREADABLE',
  /** No broker answered in time, or none is running. Retryable. */
  Unavailable: 'CREDENTIALS_UNAVAILABLE',
  /** The broker's answer does not match `credentials.reply.v1` (a version skew during a deploy). Retryable. */
  BadReply: 'CREDENTIALS_BAD_REPLY',
  /** The broker failed on its side (database unreachable, a key missing from its keyring). Retryable. */
  Internal: 'CREDENTIALS_INTERNAL',
} as const;
export type CredentialErrorCode = (typeof CredentialErrorCode)[keyof typeof CredentialErrorCode];
