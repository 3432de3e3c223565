/**
 * The ad-platform connector contract. Every platform (the demo platform, Google Ads) implements
 * {@link AdPlatformConnector}; report and URL-check workers only ever see this interface.
 *
 * Failure contract, for every method:
 * - `RetryableError` (from `../errors`) for rate limits, unavailability and timeouts; `retryAfterMs` is set
 *   when the platform said how long to wait. A worker naks the task with that delay.
 * - `PermanentError` for revoked or invalid credentials, missing access, a bad query or unknown account;
 *   `code` is one of {@link AdsErrorCode}, and the message keeps the platform's own words.
 * - An abort through `signal` rejects with the signal's reason (an `AbortError` by default), never a typed error.
 *
 * Retries (with backoff, honouring retry-after up to a cap) and a circuit breaker per platform happen
 * inside the connector; an error that reaches the caller has already been retried as far as is sensible.
 */

/** Codes carried by the typed errors a connector throws; stable, so callers and tests can match on them. */
export const AdsErrorCode = {
  /** Credentials invalid, expired beyond refresh, or revoked (OAuth `invalid_grant`, HTTP 401). Permanent. */
  Auth: 'ADS_AUTH',
  /** Authenticated, but not allowed to see this account (HTTP 403). Permanent. */
  NoAccess: 'ADS_NO_ACCESS',
  /** The query or request is invalid (HTTP 400). Permanent. */
  BadQuery: 'ADS_BAD_QUERY',
  /** The account or resource does not exist (HTTP 404). Permanent. */
  NotFound: 'ADS_NOT_FOUND',
  /** Any other refusal the platform says will not change on retry. Permanent. */
  Rejected: 'ADS_REJECTED',
  /** Quota or rate limit (HTTP 429, RESOURCE_EXHAUSTED); `retryAfterMs` from the platform. Retryable. */
  RateLimited: 'ADS_RATE_LIMITED',
  /** The platform failed or is unreachable (HTTP 5xx, connection errors). Retryable. */
  Unavailable: 'ADS_UNAVAILABLE',
  /** No answer within the call's timeout. Retryable. */
  Timeout: 'ADS_TIMEOUT',
  /** The platform's circuit breaker is open after repeated failures; `retryAfterMs` says when it half-opens. Retryable. */
  CircuitOpen: 'ADS_CIRCUIT_OPEN',
} as const;
export type AdsErrorCode = (typeof AdsErrorCode)[keyof typeof AdsErrorCode];

export type AccountStatus = 'ENABLED' | 'CANCELED' | 'SUSPENDED' | 'CLOSED' | 'UNKNOWN';

/** Where an account sits and how to reach it. */
export interface AccountRef {
  /** The platform's account id, digits only (Google Ads customer id without dashes). */
  id: string;
  /** The manager account through which access was granted; sent as `login-customer-id`. Absent for direct access. */
  loginCustomerId?: string | undefined;
}

export interface AdAccount extends AccountRef {
  name: string;
  /** ISO 4217 code; money columns of this account's reports are in this currency. */
  currency: string;
  /** IANA zone; the account's dates (`segments.date`) are days in this zone. */
  timeZone: string;
  status: AccountStatus;
  /** A manager (MCC) account has no ads of its own, only client accounts. */
  manager: boolean;
  /** The manager directly above, within what the credentials can see; null at the top. */
  parentId: string | null;
  /** Depth below the accessible root: 0 for a directly accessible account. */
  level: number;
}

/**
 * A report query in the platform's query vocabulary (GAQL field names: `campaign.name`, `metrics.cost_micros`,
 * `segments.date`). Platform-neutral in shape; both current platforms speak GAQL.
 */
export interface ReportQuery {
  /** The resource rows come from: `search_term_view`, `keyword_view`, `campaign`, ... */
  from: string;
  select: readonly string[];
  /** GAQL conditions, ANDed: `campaign.status = 'ENABLED'`. */
  where?: readonly string[];
  /** Inclusive date range in the account's time zone (YYYY-MM-DD). */
  dateRange?: { start: string; end: string };
  limit?: number;
}

/**
 * Column types of a row batch. `money` values are in the account's currency units (the platform's micros are
 * divided by 1,000,000 and the `_micros` suffix is dropped from the column name); `integer` values arrive as
 * JSON numbers even where the wire format carries int64 as strings; ids stay strings.
 */
export type ColumnType = 'id' | 'string' | 'enum' | 'integer' | 'number' | 'money' | 'date' | 'boolean' | 'string[]';

export interface Column {
  /** The queried field, with `_micros` dropped for money: `metrics.cost_micros` → `metrics.cost`. */
  name: string;
  /** The field as queried. */
  field: string;
  type: ColumnType;
}

export type CellValue = string | number | boolean | readonly string[] | null;

/** A slice of a report: rows as arrays of cells in `schema` order. Batches of one stream share one schema. */
export interface RowBatch {
  schema: readonly Column[];
  rows: CellValue[][];
}

export type UrlSource = 'ad' | 'keyword' | 'sitelink';

/** One use of a landing-page URL: the same URL appears once per place that uses it. */
export interface UrlUsage {
  url: string;
  source: UrlSource;
  campaignId: string;
  campaignName: string;
  /** Absent for sitelinks attached at campaign level. */
  adGroupId?: string;
  adGroupName?: string;
  /** The ad id, keyword criterion id or sitelink asset id. */
  entityId: string;
  /** Human label: ad type, keyword text, sitelink text. */
  label: string;
}

export interface CallOptions {
  signal?: AbortSignal;
  /**
   * For a request/response call, the whole call's deadline. For a stream, the deadline for the response to
   * start and the longest silence between two body chunks (a stream of a million rows may take longer than
   * any fixed deadline, but must never stall). Defaults to the connector's configured timeout.
   */
  timeoutMs?: number;
}

export interface AdPlatformConnector {
  /** `demo` or `google-ads`. */
  readonly platform: string;
  /** Every account the credentials can reach, managers included, with the hierarchy between them. */
  listAccounts(opts?: CallOptions): Promise<AdAccount[]>;
  /**
   * Streams a report as row batches; at most one batch (plus the network buffer) is in memory at a time.
   * A failure before the response starts is retried; a failure after that ends the stream with a typed error
   * (RetryableError for a broken or truncated stream) and the caller restarts the report, since a silent retry
   * could deliver rows twice.
   */
  streamReport(account: AccountRef, query: ReportQuery, opts?: CallOptions): AsyncIterable<RowBatch>;
  /** Every URL used by the account's ads, keywords and sitelinks, with where it is used, in batches. */
  listUrls(account: AccountRef, opts?: CallOptions): AsyncIterable<UrlUsage[]>;
  /** Releases connections. */
  close(): Promise<void>;
}
