import type { CredentialRequest } from '@ppc/proto';
import { PermanentError } from '../errors/index.ts';
import { type AccessTokenProvider, GoogleAdsConnector, type GoogleAdsConfig } from '../ads/google-ads/connector.ts';
import type { AccountRef } from '../ads/types.ts';
import type { NatsConnection } from '../nats/connect.ts';
import { CredentialErrorCode } from './codes.ts';
import { type CredentialGrant, type RequestAccessTokenOptions, requestAccessToken } from './request.ts';

/** Connector settings a worker may tune; everything about credentials and endpoints comes from the broker. */
export type RunConnectorTuning = Omit<
  GoogleAdsConfig,
  | 'accessToken'
  | 'refreshToken'
  | 'clientId'
  | 'clientSecret'
  | 'developerToken'
  | 'baseUrl'
  | 'tokenUrl'
  | 'platform'
  | 'loginCustomerId'
>;

export interface ConnectorForRunOptions extends RequestAccessTokenOptions {
  /** A grant with less validity left than this is replaced before the next API call; default 60 s. */
  refreshMarginMs?: number;
  /** Timeouts, retries, breaker and batch size of the connector. */
  connector?: RunConnectorTuning;
  /** The clock, for tests; default `Date.now`. */
  now?: () => number;
}

/** The run's identity as the broker checks it; a report or URL-check task fits. */
export type RunCredentials = Pick<CredentialRequest, 'runId' | 'accountId' | 'connectionId' | 'platform'>;

/**
 * The ad-platform connector for one run, with its access tokens from the credential broker: the worker never sees
 * a refresh token. The first token is requested here (so a refused run fails before any work starts, with the
 * broker's PermanentError), and gives the connector its API endpoint and developer token. Afterwards a token is
 * requested again when the current one is about to expire, and once more (with `force`) after the API answered
 * 401; concurrent calls share one request.
 *
 * Both platforms speak the Google Ads REST API (the demo platform imitates it), so this is a GoogleAdsConnector
 * pointed where the broker says.
 */
export async function connectorForRun(
  nc: NatsConnection,
  task: RunCredentials,
  opts: ConnectorForRunOptions = {},
): Promise<GoogleAdsConnector> {
  return (await openRunConnection(nc, task, opts)).connector;
}

/** A run's connector (see {@link connectorForRun}) and the account to read, in the platform's own ids. */
export interface RunConnection {
  connector: GoogleAdsConnector;
  account: AccountRef;
  /** The account's time zone and currency as last synced (UTC and USD when the broker did not say). */
  timeZone: string;
  currency: string;
}

/** Like {@link connectorForRun}, also naming the account in the platform's ids (the task carries only ours). */
export async function openRunConnection(
  nc: NatsConnection,
  task: RunCredentials,
  opts: ConnectorForRunOptions = {},
): Promise<RunConnection> {
  const request: CredentialRequest = {
    runId: task.runId,
    accountId: task.accountId,
    connectionId: task.connectionId,
    platform: task.platform,
  };
  const now = opts.now ?? Date.now;
  const marginMs = opts.refreshMarginMs ?? 60_000;
  const ask = (force = false) =>
    requestAccessToken(nc, force ? { ...request, force: true } : request, {
      ...(opts.timeoutMs !== undefined && { timeoutMs: opts.timeoutMs }),
      ...(opts.signal && { signal: opts.signal }),
      ...(opts.traceparent && { traceparent: opts.traceparent }),
    });

  let grant: CredentialGrant = await ask();
  if (!grant.developerToken) {
    throw new PermanentError(`credential broker: the grant for run ${request.runId} carries no developer token`, {
      code: CredentialErrorCode.BadReply,
    });
  }
  // A forced request is only made after the API refused the current token. The broker keeps a token per connection
  // until shortly before it expires, so what comes back may be the same token; the connector then fails with ADS_AUTH.
  const accessToken: AccessTokenProvider = async ({ force }) => {
    if (force || Date.parse(grant.expiresAt) - now() <= marginMs) grant = await ask(force);
    return grant.accessToken;
  };
  if (!grant.platformAccountId) {
    throw new PermanentError(`credential broker: the grant for run ${request.runId} names no account`, {
      code: CredentialErrorCode.BadReply,
    });
  }
  const account: AccountRef = {
    id: grant.platformAccountId,
    ...(grant.loginCustomerId && { loginCustomerId: grant.loginCustomerId }),
  };
  const connector = new GoogleAdsConnector({
    ...opts.connector,
    platform: grant.platform,
    developerToken: grant.developerToken,
    ...(grant.apiBaseUrl && { baseUrl: grant.apiBaseUrl }),
    ...(grant.loginCustomerId && { loginCustomerId: grant.loginCustomerId }),
    accessToken,
  });
  return { connector, account, timeZone: grant.accountTimeZone ?? 'UTC', currency: grant.accountCurrency ?? 'USD' };
}
